"""`train(cfg)`: compose data, model, task, trainer from a Hydra config, fit, and return metrics.

`train.py` is a thin `@hydra.main` over this function, so tests call it on a composed config.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zoo.analysis import count_macs, count_parameters
from zoo.checkpoint import AtomicCheckpointIO
from zoo.registry import model_task

__all__ = ["build_model", "train"]

# Keys of a model config that describe how to run the model, not arguments of its builder.
MODEL_RUN_KEYS = ("input_size",)

log = logging.getLogger(__name__)


def _build(node: DictConfig, **kwargs: Any) -> Any:
    """``instantiate``, but a ValueError/TypeError raised by our code reaches the user unwrapped."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, (ValueError, TypeError)):
            raise error.__cause__ from None
        raise


def build_model(model_cfg: DictConfig, **kwargs: Any):
    """Instantiate a ``configs/model/*.yaml`` entry, leaving out the run options (``input_size``)."""
    builder_cfg = OmegaConf.create({k: v for k, v in model_cfg.items() if k not in MODEL_RUN_KEYS})
    return _build(builder_cfg, **kwargs)


def _check_input_size(model: Any, datamodule: Any, model_name: str) -> None:
    minimum = getattr(model, "min_input_size", (1, 1))
    size = getattr(datamodule, "image_size", None)
    if size is not None and size < max(minimum):
        raise ValueError(
            f"{model_name} needs inputs of at least {minimum[0]}×{minimum[1]} pixels, but the data gives "
            f"{size}×{size}: choose a larger data.image_size (the built-in and ImageFolder data accept any size)"
        )


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a callbacks/logger mapping; TensorBoard only when installed."""
    objects = []
    for name, entry in (group or {}).items():
        if entry is None:
            continue
        if "TensorBoardLogger" in str(entry.get("_target_", "")) and not _tensorboard_available():
            log.info("tensorboard is not installed: logging to CSV only (pip install tensorboard)")
            continue
        if "_target_" not in entry:
            raise ValueError(f"config entry {name!r} has no _target_: {OmegaConf.to_yaml(entry)}")
        objects.append(_build(entry))
    return objects


def _tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None


def _to_float(value: Any) -> Any:
    return float(value) if isinstance(value, torch.Tensor) else value


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train the configured model; return final metrics, the best value of the task's monitored metric
    (``best``; also ``best_val_acc`` for classification), params and MACs."""
    if cfg.get("print_config"):
        print(OmegaConf.to_yaml(cfg, resolve=True))
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = _build(cfg.data)
    model_kwargs = {"num_classes": datamodule.num_classes}
    if model_task(cfg.model.name) == "classification":
        model_kwargs["in_chans"] = datamodule.in_chans
    model = build_model(cfg.model, **model_kwargs)
    _check_input_size(model, datamodule, cfg.model.name)
    task = _build(
        cfg.task,
        model=model,
        optimizer=_build(cfg.optimizer),
        scheduler=_build(cfg.scheduler) if cfg.get("scheduler") else None,
        num_classes=datamodule.num_classes,
    )
    trainer: pl.Trainer = _build(
        cfg.trainer,
        callbacks=_instantiate_group(cfg.get("callbacks")),
        logger=_instantiate_group(cfg.get("logger")) or False,
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    metrics = {key: _to_float(value) for key, value in trainer.callback_metrics.items()}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_score if checkpoint is not None else None
    metrics["monitor"] = task.monitor
    metrics["best"] = _to_float(best) if best is not None else metrics.get(task.monitor)
    if task.monitor == "val/acc":
        metrics["best_val_acc"] = metrics["best"]
    metrics["params"] = count_parameters(model)
    metrics["macs"] = count_macs(model, (datamodule.in_chans, datamodule.image_size, datamodule.image_size))
    metrics["output_dir"] = str(Path(cfg.paths.output_dir).resolve())
    _print_summary(cfg, metrics, checkpoint)
    return metrics


def _print_summary(cfg: DictConfig, metrics: dict[str, Any], checkpoint) -> None:
    best, monitor = metrics["best"], metrics["monitor"]
    lines = [
        "",
        f"model          {cfg.model.name}",
        f"params         {metrics['params']:,}",
        f"MACs           {metrics['macs'] / 1e6:,.1f} M per {cfg.data.get('image_size', '?')}px image "
        f"(fvcore: 1 fused multiply-add = 1 MAC; FLOPs ≈ 2 × MACs)",
        f"best {monitor} ".ljust(15) + (f"{best:.4f}" if best is not None else "n/a"),
        f"run directory  {metrics['output_dir']}",
    ]
    if checkpoint is not None and checkpoint.best_model_path:
        lines.append(f"checkpoints    best: {checkpoint.best_model_path}  last: {checkpoint.last_model_path}")
    print("\n".join(lines))
