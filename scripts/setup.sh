#!/usr/bin/env bash
# First use: create .venv at the repo root and install zoo with its dev tools; later: reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last successful install.
if [ ! -f .venv/.zoo-installed ] || [ pyproject.toml -nt .venv/.zoo-installed ]; then
    echo "[setup] installing torch, torchvision and zoo[dev] into .venv (first run: a few minutes)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    touch .venv/.zoo-installed
fi
