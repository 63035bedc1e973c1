"""Learning-rate schedules stepped once per optimisation step: linear warmup, then a decay.

With warmup W steps, total T steps and base rate η, the multiplier of η at step t is
    t < W:   start + (1 − start) · t / W                          (linear warmup)
    cosine:  min + (1 − min) · ½ · (1 + cos(π · (t − W) / (T − W)))
    step:    gamma ^ ⌊(t − W) / step_size⌋
    constant: 1
The cosine decay needs T; a run without a set length (``trainer.max_epochs=-1``, Lightning's "until
stopped", without ``trainer.max_steps``) passes ``total_steps=None``, which the step and constant
schedules accept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["WarmupSchedule", "warmup_schedule"]

_KINDS = ("cosine", "step", "constant")


@dataclass
class WarmupSchedule:
    """A picklable ``step → multiplier`` function (so LambdaLR can save it in checkpoints)."""

    kind: str
    total_steps: int | None
    warmup_steps: int = 0
    warmup_start: float = 0.01
    min_factor: float = 0.0
    step_size: int = 1
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"scheduler kind must be one of {_KINDS}, got {self.kind!r}")
        if self.total_steps is None:
            if self.kind == "cosine":
                raise ValueError(
                    "the cosine schedule decays over the run's length, which trainer.max_epochs=-1 leaves open: "
                    "choose scheduler=constant or scheduler=step, or set trainer.max_steps"
                )
            if self.warmup_steps < 0:
                raise ValueError(f"need warmup_steps >= 0, got {self.warmup_steps}")
        elif self.total_steps < 1 or not 0 <= self.warmup_steps <= self.total_steps:
            raise ValueError(
                f"need total_steps >= 1 and 0 <= warmup_steps <= total_steps, got total_steps="
                f"{self.total_steps}, warmup_steps={self.warmup_steps}"
            )
        if self.step_size < 1:
            raise ValueError(f"step_size must be >= 1 step, got {self.step_size}")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_start + (1 - self.warmup_start) * step / self.warmup_steps
        done = step - self.warmup_steps
        if self.kind == "cosine":
            progress = min(done / max(1, self.total_steps - self.warmup_steps), 1.0)
            return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
        if self.kind == "step":
            return self.gamma ** (done // self.step_size)
        return 1.0


def warmup_schedule(
    optimizer: torch.optim.Optimizer,
    *,
    kind: str,
    total_steps: int | None,
    steps_per_epoch: int,
    warmup_epochs: float = 0.0,
    warmup_start: float = 0.01,
    min_lr_ratio: float = 0.0,
    step_epochs: int = 30,
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Build the per-step LambdaLR; epochs in the config are converted to steps here (``total_steps=None``:
    a run of open length, see the module docstring)."""
    warmup_steps = round(warmup_epochs * steps_per_epoch)
    schedule = WarmupSchedule(
        kind=kind,
        total_steps=total_steps,
        warmup_steps=warmup_steps if total_steps is None else min(total_steps, warmup_steps),
        warmup_start=warmup_start,
        min_factor=min_lr_ratio,
        step_size=max(1, step_epochs * steps_per_epoch),
        gamma=gamma,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
