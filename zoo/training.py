"""`train(cfg)`: compose data, model, task, trainer from a Hydra config, fit, and return metrics.

`train.py` is a thin `@hydra.main` over this function, so tests call it on a composed config.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zoo.analysis import count_macs, count_parameters
from zoo.callbacks import LastCheckpoint
from zoo.checkpoint import AtomicCheckpointIO, load_checkpoint
from zoo.registry import model_task

__all__ = ["build_model", "check_resume_checkpoint", "prepare_model", "resolve_ckpt_path", "train"]

# Keys of a model config that describe how to run the model, not arguments of its builder.
MODEL_RUN_KEYS = ("input_size", "channels_last", "compile", "bn_momentum")

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
    """Instantiate every entry of a callbacks/logger mapping, except those with ``enabled: false``;
    TensorBoard only when installed."""
    objects = []
    for name, entry in (group or {}).items():
        if entry is None or not entry.get("enabled", True):
            continue
        entry = OmegaConf.create({key: value for key, value in entry.items() if key != "enabled"})
        if "TensorBoardLogger" in str(entry.get("_target_", "")) and not _tensorboard_available():
            log.info("tensorboard is not installed: logging to CSV only (pip install tensorboard)")
            continue
        if "_target_" not in entry:
            raise ValueError(f"config entry {name!r} has no _target_: {OmegaConf.to_yaml(entry)}")
        objects.append(_build(entry))
    return objects


def _tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None


def resolve_ckpt_path(ckpt_path: str | None) -> str | None:
    """A checkpoint file, or a run directory meaning its ``checkpoints/last.ckpt``; ValueError if absent."""
    if ckpt_path is None:
        return None
    path = Path(ckpt_path)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt" if (path / "checkpoints").is_dir() else path / "last.ckpt"
    if not path.is_file():
        raise ValueError(
            f"ckpt_path={ckpt_path!r}: expected a checkpoint file or a run directory holding "
            f"checkpoints/last.ckpt, but {str(path)!r} does not exist"
        )
    return str(path)


def check_resume_checkpoint(path: str, task: pl.LightningModule) -> None:
    """ValueError unless ``path`` is a Lightning training checkpoint whose weights fit ``task`` (names and
    shapes), so a foreign file or another model's run is refused before training starts."""
    checkpoint = load_checkpoint(path)
    if "state_dict" not in checkpoint or "pytorch-lightning_version" not in checkpoint:
        raise ValueError(
            f"checkpoint {path!r} is not a zoo training checkpoint (a Lightning checkpoint with 'state_dict'); "
            f"its keys are {sorted(map(str, checkpoint))[:8]}"
        )
    saved, expected = checkpoint["state_dict"], task.state_dict()
    missing = sorted(expected.keys() - saved.keys())
    unexpected = sorted(saved.keys() - expected.keys())
    reshaped = [k for k in expected.keys() & saved.keys() if tuple(expected[k].shape) != tuple(saved[k].shape)]
    if missing or unexpected or reshaped:
        raise ValueError(
            f"checkpoint {path!r} does not fit this model: {len(missing)} missing weights {missing[:3]}, "
            f"{len(unexpected)} unexpected {unexpected[:3]}, {len(reshaped)} of another shape {sorted(reshaped)[:3]}"
            " — was it trained with another model or number of classes?"
        )


def prepare_model(
    model: torch.nn.Module, channels_last: bool = False, compile: bool = False, bn_momentum: float | None = None
) -> torch.nn.Module:
    """Apply the run options ``model.channels_last`` (NHWC weights, and a forward pre-hook that hands image
    batches over in NHWC too), ``model.compile`` (``nn.Module.compile``: the module's call is compiled, its
    state_dict keys unchanged) and ``model.bn_momentum`` (every batch norm's running-statistics momentum:
    MobileNetV3's 0.01 averages over ~100 steps, too slow for the weights of a short run from scratch, whose
    eval-mode outputs then lag behind training)."""
    for name, value in (("model.channels_last", channels_last), ("model.compile", compile)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false, got {value!r}")
    if bn_momentum is not None:
        if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float)) or not 0 < bn_momentum <= 1:
            raise ValueError(f"model.bn_momentum must be a number in (0, 1] or null, got {bn_momentum!r}")
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.momentum = float(bn_momentum)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        model.register_forward_pre_hook(_images_to_channels_last)
    if compile:
        model.compile()
    return model


def _images_to_channels_last(module: torch.nn.Module, args: tuple) -> tuple:
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return args


def _write_metrics(metrics: dict[str, Any], output_dir: Path) -> None:
    """``metrics.json`` in the run directory (what sweep reports read), written atomically."""
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = output_dir / ".metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2, default=str))
    os.replace(tmp, output_dir / "metrics.json")


def _to_float(value: Any) -> Any:
    return float(value) if isinstance(value, torch.Tensor) else value


def train(cfg: DictConfig, extra_callbacks: Sequence[pl.Callback] = ()) -> dict[str, Any]:
    """Train the configured model; return final metrics, the best value of the task's monitored metric
    (``best``; also ``best_val_acc`` for classification), params and MACs. ``extra_callbacks`` join the
    configured ones (benchmarks and tests use it to observe a run)."""
    if cfg.get("print_config"):
        print(OmegaConf.to_yaml(cfg, resolve=True))
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = _build(cfg.data)
    model_kwargs = {"num_classes": datamodule.num_classes}
    if model_task(cfg.model.name) == "classification":
        model_kwargs["in_chans"] = datamodule.in_chans
    model = build_model(cfg.model, **model_kwargs)
    _check_input_size(model, datamodule, cfg.model.name)
    size = datamodule.image_size
    macs = count_macs(model, (datamodule.in_chans, size, size))  # before compile: fvcore traces the eager model
    run_options = {key: cfg.model[key] for key in ("channels_last", "compile", "bn_momentum") if key in cfg.model}
    model = prepare_model(model, **run_options)
    task = _build(
        cfg.task,
        model=model,
        optimizer=_build(cfg.optimizer),
        scheduler=_build(cfg.scheduler) if cfg.get("scheduler") else None,
        num_classes=datamodule.num_classes,
    )
    trainer: pl.Trainer = _build(
        cfg.trainer,
        callbacks=[*_instantiate_group(cfg.get("callbacks")), *extra_callbacks],
        logger=_instantiate_group(cfg.get("logger")) or False,
        plugins=[AtomicCheckpointIO()],
    )
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"))
    if ckpt_path is not None:
        check_resume_checkpoint(ckpt_path, task)
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)

    metrics = {key: _to_float(value) for key, value in trainer.callback_metrics.items()}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_score if checkpoint is not None else None
    metrics["monitor"] = task.monitor
    metrics["best"] = _to_float(best) if best is not None else metrics.get(task.monitor)
    if task.monitor == "val/acc":
        metrics["best_val_acc"] = metrics["best"]
    metrics["params"] = count_parameters(model)
    metrics["macs"] = macs
    metrics["output_dir"] = str(Path(cfg.paths.output_dir).resolve())
    metrics["model"] = cfg.model.name
    if trainer.is_global_zero:
        _write_metrics(metrics, Path(metrics["output_dir"]))
        last = next((cb.path for cb in trainer.callbacks if isinstance(cb, LastCheckpoint)), None)
        _print_summary(cfg, metrics, checkpoint, last if last is not None and last.is_file() else None)
    return metrics


def _print_summary(cfg: DictConfig, metrics: dict[str, Any], checkpoint, last_path: Path | None) -> None:
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
        lines.append(f"checkpoints    best: {checkpoint.best_model_path}")
    if last_path is not None:
        lines.append(f"resume with    ckpt_path={metrics['output_dir']}   (its {last_path.name})")
    print("\n".join(lines))
