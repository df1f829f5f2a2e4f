"""Set-up shared by the pipeline's actor processes."""

from __future__ import annotations

import sys

import pyarrow as pa


class _NoPandas:
    """An import finder that refuses pandas (installed only for a moment, see below)."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("pandas is kept out of pyarrow's checks here", name=name)


def arrow_without_pandas() -> None:
    """Have pyarrow settle, once, that pandas is absent, without importing it.

    The first time pyarrow converts a Python value (its Python shim, and its C++ converter) it
    imports pandas, only to ask whether values are pandas objects; that costs each process about
    40 MB it never uses, as the pipeline hands pyarrow no pandas object. pyarrow remembers the
    answer of that first look, so the finder is needed only while it looks; a later explicit
    `import pandas` (`to_pandas`, chDB's DataFrame results) still works."""
    if "pandas" in sys.modules:
        return  # already imported in this process: nothing to save
    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.lib._pandas_api.have_pandas  # noqa: B018 - the shim's look
        pa.array([0])  # the C++ converter's look
    finally:
        sys.meta_path.remove(finder)


def release_arrow_memory() -> None:
    """Hand the memory pyarrow's allocator keeps for reuse back to the system, after a set's work.

    mimalloc (pyarrow's default pool) keeps freed pages for the next allocation; an actor that
    handles one set at a time then stays at the size of its largest set's temporaries (the COPY
    tuples, the stored-form tables) for good. Releasing costs ~1 ms a set."""
    pa.default_memory_pool().release_unused()
