"""Lightning callbacks for runs that get killed or diverge.

- :class:`LastCheckpoint` writes ``last.ckpt`` every ``every_n_steps`` optimisation steps and at the end of
  every epoch, atomically (through the trainer's checkpoint I/O, :class:`zoo.checkpoint.AtomicCheckpointIO`),
  so a run killed mid-epoch resumes from at most ``every_n_steps`` steps back (``ckpt_path=<run dir>``).
  Together with the resumable loaders (:mod:`zoo.data.resumable`) and the RNG state the task stores in each
  checkpoint, the resumed run ends with the weights of an uninterrupted one. A run stopped by SIGTERM (or
  SIGINT, which :func:`zoo.training.train` hands to the same path) writes it once more where it stopped, at
  the batch boundary where Lightning's loops honour the signal.
- :class:`StopOnNonFiniteLoss` stops a diverging run at the first NaN/inf loss, before its backward pass,
  with a message naming the step.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

__all__ = ["LastCheckpoint", "NonFiniteLossError", "StopOnNonFiniteLoss"]


class LastCheckpoint(pl.Callback):
    """Save ``dirpath/filename`` every ``every_n_steps`` training steps, at every epoch end, and when a signal
    stops the run (after its first step: before it, there is nothing to resume)."""

    def __init__(self, dirpath: str | Path, every_n_steps: int = 50, filename: str = "last.ckpt") -> None:
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"callbacks.last_checkpoint.every_n_steps must be a positive int, got {every_n_steps!r}")
        self.path = Path(dirpath) / filename
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # Lightning raises SIGTERMException between batches, so the state is consistent; any other exception
        # may have come mid-step, and the last periodic checkpoint is the one to resume from.
        if isinstance(exception, SIGTERMException) and trainer.global_step > 0:
            self._save(trainer)

    def _save(self, trainer: pl.Trainer) -> None:
        if not trainer.fast_dev_run:  # "does it run?" writes no checkpoints, as Lightning's ModelCheckpoint
            # The full state (optimizer, schedulers, loops), so that a resume continues exactly.
            trainer.save_checkpoint(self.path, weights_only=False)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(pl.Callback):
    """Raise :class:`NonFiniteLossError` at the first non-finite training loss, naming the step."""

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            raise NonFiniteLossError(
                f"training loss is {loss.detach().float().item()} at global step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}, batch {trainer.fit_loop.epoch_loop.batch_idx}): stopped instead "
                "of training on it. Lower optimizer.lr, set trainer.gradient_clip_val, or check the data."
            )
