"""Build of the optional compiled kernel (ray_cdc/commitlog/_fastpath.pyx); metadata is in pyproject.toml.

The extension is optional: without Cython or a C compiler the package still installs, and the
reader uses its pure-Python decode path (it logs that once, at INFO).
"""

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # no Cython: build the generated C file when the sdist carries one, else nothing
    from pathlib import Path

    source = Path(__file__).parent / "ray_cdc" / "commitlog" / "_fastpath.c"
    ext_modules = ([Extension("ray_cdc.commitlog._fastpath", [str(source.relative_to(Path(__file__).parent))],
                              optional=True)] if source.exists() else [])
else:
    ext_modules = cythonize(
        [Extension("ray_cdc.commitlog._fastpath", ["ray_cdc/commitlog/_fastpath.pyx"], optional=True)],
        compiler_directives={"language_level": "3"},
        quiet=True,
    )
    for extension in ext_modules:
        extension.optional = True  # cythonize does not carry the flag over

setup(ext_modules=ext_modules)
