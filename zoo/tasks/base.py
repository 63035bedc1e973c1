"""What every zoo task shares: the optimiser and per-step schedule, and the metric that picks checkpoints.

A task config names ``monitor`` (the validation metric that decides the best checkpoint, e.g. ``val/acc``
or ``val/map_50``) and ``monitor_mode`` ("max" or "min"); the checkpoint callback and the run summary read
them from the task.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn

from zoo.tasks.optim import param_groups_weight_decay

__all__ = ["Task"]


class Task(pl.LightningModule):
    """Holds ``model`` and builds ``optimizer`` (a partial taking ``params``) and ``scheduler`` (a partial of
    :func:`zoo.tasks.schedules.warmup_schedule`, or None) stepped every optimisation step. Subclasses set
    ``default_monitor``, the checkpoint metric used when ``monitor`` is not given, and pass their other
    keyword arguments on here."""

    default_monitor: str

    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        *,
        skip_norm_and_bias_decay: bool = True,
        monitor: str | None = None,
        monitor_mode: str = "max",
    ) -> None:
        super().__init__()
        if monitor_mode not in ("max", "min"):
            raise ValueError(f"task.monitor_mode must be 'max' or 'min', got {monitor_mode!r}")
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.skip_norm_and_bias_decay = skip_norm_and_bias_decay
        self.monitor = monitor or self.default_monitor
        self.monitor_mode = monitor_mode
        self._resume_state: tuple[dict | None, dict | None] = (None, None)

    # Exact resumption: the data position and the global RNG (dropout, stochastic depth, MixUp draws)
    # continue where the checkpoint left them. Both are applied at train start, after the sanity check (which
    # draws nothing) and before the first batch is fetched. Lightning stores the loader position too, but
    # skips restoring it when the loader was built before the checkpoint was read (as estimating the
    # schedule's length in configure_optimizers does).
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_state"] = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            checkpoint["rng_state"]["cuda"] = torch.cuda.get_rng_state_all()
        loader = self.trainer.train_dataloader
        if hasattr(loader, "state_dict"):
            checkpoint["train_loader_state"] = loader.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._resume_state = (checkpoint.get("rng_state"), checkpoint.get("train_loader_state"))

    def on_train_start(self) -> None:
        (rng, loader_state), self._resume_state = self._resume_state, (None, None)
        loader = self.trainer.train_dataloader
        if loader_state is not None and hasattr(loader, "load_state_dict"):
            loader.load_state_dict(loader_state)
        if rng is not None:
            torch.set_rng_state(rng["torch"])
            random.setstate(_as_tuple(rng["python"]))
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])

    def configure_optimizers(self):
        weight_decay = getattr(self.optimizer_factory, "keywords", {}).get("weight_decay", 0.0)
        groups = param_groups_weight_decay(self.model, weight_decay, self.skip_norm_and_bias_decay)
        optimizer = self.optimizer_factory(params=groups)
        if self.scheduler_factory is None:
            return optimizer
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        scheduler = self.scheduler_factory(
            optimizer, total_steps=total_steps, steps_per_epoch=max(1, total_steps // epochs)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _as_tuple(value):
    """``random.getstate()`` is nested tuples; a checkpoint may give them back as lists."""
    return tuple(_as_tuple(item) for item in value) if isinstance(value, (list, tuple)) else value
