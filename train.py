"""Train a zoo model: `python train.py model=resnet18` (see configs/ for every option).

A run that SIGTERM or SIGINT stops exits with status 128 + the signal number after printing the
`ckpt_path=` that resumes it (zoo.training.TrainingInterrupted); a checkpoint or run directory that
cannot be written (a full disk, a read-only folder) ends with one line naming it and the cause, status 1.
"""

import sys

import hydra
from omegaconf import DictConfig

from zoo.checkpoint import CheckpointWriteError
from zoo.training import train


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except CheckpointWriteError as error:  # the disk's or the folder's fault: a traceback would not help
        sys.exit(f"error: {error}")
    return metrics.get("best")  # the value a Hydra sweeper optimises


if __name__ == "__main__":
    main()
