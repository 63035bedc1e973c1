"""Train a zoo model: `python train.py model=resnet18` (see configs/ for every option)."""

import hydra
from omegaconf import DictConfig

from zoo.training import train


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get("best")  # the value a Hydra sweeper optimises


if __name__ == "__main__":
    main()
