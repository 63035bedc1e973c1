#!/usr/bin/env bash
# Quick start: set up on first use, then train ResNet-18 on the built-in synthetic data.
# Extra arguments are Hydra overrides, e.g. `bash scripts/train.sh trainer.max_epochs=2`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python train.py model=resnet18 "$@"
