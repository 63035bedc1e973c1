"""What every zoo task shares: the optimiser and per-step schedule, and the metric that picks checkpoints.

A task config names ``monitor`` (the validation metric that decides the best checkpoint, e.g. ``val/acc``
or ``val/map_50``) and ``monitor_mode`` ("max" or "min"); the checkpoint callback and the run summary read
them from the task. Each task declares the metrics it logs (``logged_metrics``), so a misspelt monitor is
refused when the task is built, not after the first epoch.

Resuming (``ckpt_path=``) restores the optimizer's state (moments, step counts) and the schedule's position
from the checkpoint, and the optimizer's hyperparameters (``optimizer.lr``, ``weight_decay``, betas,
momentum) from the config: a resume with a new ``optimizer.lr`` trains with it, the schedule continuing from
where it stood with the new base rate, and says so on the console.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch import nn

from zoo.tasks.optim import param_groups

__all__ = ["TRAIN_LOSS", "Task", "qualified_name"]

# train/loss is logged per step and per epoch: Lightning's callback metrics hold all three names.
TRAIN_LOSS = ("train/loss", "train/loss_step", "train/loss_epoch")


class Task(pl.LightningModule):
    """Holds ``model`` and builds ``optimizer`` (a partial taking ``params``) and ``scheduler`` (a partial of
    :func:`zoo.tasks.schedules.warmup_schedule`, or None) stepped every optimisation step. Subclasses set
    ``default_monitor``, the checkpoint metric used when ``monitor`` is not given, and pass their other
    keyword arguments on here. ``task_name`` is the registry's task (``zoo.model_spec(name).task``) the
    subclass trains, and ``logged_metrics`` the metric names it logs, which ``monitor`` must be one of.
    ``backbone_lr_scale`` trains ``model.backbone`` at that fraction of the base rate (``zoo.tasks.optim``)."""

    task_name: str
    default_monitor: str
    logged_metrics: tuple[str, ...]

    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        *,
        skip_norm_and_bias_decay: bool = True,
        backbone_lr_scale: float = 1.0,
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
        self.backbone_lr_scale = backbone_lr_scale
        if backbone_lr_scale != 1:  # checked now, not at the first step
            param_groups(model, 1.0, 0.0, backbone_lr_scale=backbone_lr_scale)
        self.monitor = monitor or self.default_monitor
        self.check_metric(self.monitor)
        self.monitor_mode = monitor_mode
        self._resume_state: tuple[dict | None, dict | None] = (None, None)
        self._configured_groups: list[dict] = []

    @classmethod
    def check_metric(cls, name: str, key: str = "task.monitor") -> None:
        """ValueError unless the task logs the metric ``name`` (the value of config ``key``)."""
        if name not in cls.logged_metrics:
            raise ValueError(
                f"{key}={name!r} is not a metric {cls.__name__} logs; choose one of {', '.join(cls.logged_metrics)}"
            )

    def model_inputs(self, batch) -> tuple:
        """The arguments of the model's training forward for ``batch``: the images (a detector adds targets)."""
        return (batch[0],)

    # Exact resumption: the data position and the global RNG (dropout, stochastic depth, MixUp draws)
    # continue where the checkpoint left them. Both are applied at train start, after the sanity check (which
    # draws nothing) and before the first batch is fetched. Lightning stores the loader position too, but
    # skips restoring it when the loader was built before the checkpoint was read (as estimating the
    # schedule's length in configure_optimizers does).
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_state"] = {"torch": torch.get_rng_state(), "python": random.getstate()}
        # Which optimizer made the state, so a resume with another one is refused by name (zoo.training).
        checkpoint["optimizer_classes"] = [qualified_name(type(o)) for o in self.trainer.optimizers]
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
        self._use_configured_hyperparameters()

    def _use_configured_hyperparameters(self) -> None:
        """After a resume, put the config's optimizer hyperparameters back over the checkpoint's (see the
        module docstring); a changed base rate scales the current rate, so the schedule keeps its shape."""
        optimizer = self.trainer.optimizers[0]
        schedulers = self.trainer.lr_scheduler_configs
        scheduler = schedulers[0].scheduler if schedulers else None
        changes: dict[str, tuple] = {}
        # Empty where a subclass builds its own optimizer: nothing recorded, nothing replaced.
        pairs = zip(optimizer.param_groups, self._configured_groups, strict=False)
        for index, (group, configured) in enumerate(pairs):
            for key, value in configured.items():
                old = group.get("initial_lr", group["lr"]) if key == "lr" else group.get(key)
                if _plain(old) == _plain(value):
                    continue
                changes.setdefault(key, (old, value))
                if key != "lr":
                    group[key] = value
                    continue
                group["lr"] = group["lr"] * value / old if old else value
                if "initial_lr" in group:
                    group["initial_lr"] = value
                if scheduler is not None and hasattr(scheduler, "base_lrs"):
                    scheduler.base_lrs[index] = value
        if changes and self.trainer.is_global_zero:
            settings = ", ".join(f"{key} {_plain(old)} -> {_plain(new)}" for key, (old, new) in changes.items())
            print(
                f"resuming with the config's optimizer settings instead of the checkpoint's: {settings} "
                f"(the optimizer state and the schedule's position, step {self.trainer.global_step}, come from "
                "the checkpoint)"
            )

    def configure_optimizers(self):
        settings = getattr(self.optimizer_factory, "keywords", {})
        groups = param_groups(
            self.model,
            settings.get("lr"),
            settings.get("weight_decay", 0.0),
            self.skip_norm_and_bias_decay,
            self.backbone_lr_scale,
        )
        optimizer = self.optimizer_factory(params=groups)
        # What the config asked for; a resume's checkpoint overwrites the groups, on_train_start puts these back.
        self._configured_groups = [
            {key: value for key, value in group.items() if key not in ("params", "param_names")}
            for group in optimizer.param_groups
        ]
        if self.scheduler_factory is None:
            return optimizer
        total = self.trainer.estimated_stepping_batches  # inf for trainer.max_epochs=-1 without max_steps
        scheduler = self.scheduler_factory(
            optimizer,
            total_steps=None if math.isinf(total) else max(1, int(total)),
            steps_per_epoch=self._steps_per_epoch(),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _steps_per_epoch(self) -> int:
        """Optimisation steps in one epoch of the train loader (after ``limit_train_batches``), which
        converts the schedule's epochs to steps also when ``max_steps`` ends the run early or never comes."""
        trainer = self.trainer
        if trainer.train_dataloader is None:
            trainer.fit_loop.setup_data()
        return max(1, math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches))


def qualified_name(cls: type) -> str:
    """``torch.optim.adamw.AdamW``: how checkpoints name the optimizer class that made their state."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _plain(value):
    """Optimizer settings as comparable plain values: tuples for betas, numbers for 0-d tensors."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return tuple(_plain(item) for item in value) if isinstance(value, (list, tuple)) else value


def _as_tuple(value):
    """``random.getstate()`` is nested tuples; a checkpoint may give them back as lists."""
    return tuple(_as_tuple(item) for item in value) if isinstance(value, (list, tuple)) else value
