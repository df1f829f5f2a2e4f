"""Shared test fixtures.

`shared_fixtures`: the `fixtures` folder of the shared material (real Cassandra segments and more),
found at `../shared` beside the repository or at `$RAY_CDC_SHARED`. Tests that need it skip, naming
the missing path, when it is absent.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("RAY_CDC_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")

# The `ray-cdc` command the tests run is the one installed beside this interpreter (the suite runs as
# `.venv/bin/python -m pytest`, without activating the venv, so its bin is not on PATH otherwise).
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    root = SHARED / "fixtures"
    if not root.is_dir():
        pytest.skip(f"shared fixtures not found at {root} (set RAY_CDC_SHARED to the shared folder)")
    return root
