#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs the whole suite.
# Python packages go into .venv; the Cassandra test node into .test-services (scripts/install-test-services.sh).
# Extra arguments are passed to pytest (e.g. `bash scripts/test.sh tests/unit -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
bash scripts/install-test-services.sh
# the compiled fast path must have been built here: its test fails rather than skips
export RAY_CDC_REQUIRE_FASTPATH=1
exec .venv/bin/python -m pytest "$@"
