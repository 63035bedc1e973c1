#!/usr/bin/env bash
# Set up on first use, then run the test suite (the slow learning runs: `bash scripts/test.sh -m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Two workers (pytest-xdist), one thread each (tests/conftest.py): both cores stay busy on small tensors.
exec .venv/bin/python -m pytest -n 2 "$@"
