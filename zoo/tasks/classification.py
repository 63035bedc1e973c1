"""Image classification as a LightningModule: cross-entropy with label smoothing, optional
MixUp/CutMix, weight decay that skips norms and biases, and a per-step warmup schedule.

Loss for logits z and (possibly soft) target distribution q, with smoothing ε over K classes:
    q' = (1 − ε)·q + ε/K,     L = −Σ_k q'_k · log softmax(z)_k
Models with auxiliary classifiers (GoogLeNet, Inception v3) return a named tuple in training,
``(logits, *aux_logits)``; their losses are added with the weights the model declares in
``aux_loss_weights`` (0.3 for each of GoogLeNet's two, 0.4 for Inception v3's):
    L_total = L(logits) + Σ_i w_i · L(aux_i)
MixUp (Zhang et al., 2017) blends two images and their labels with λ ~ Beta(α, α); CutMix (Yun et
al., 2019) pastes a box of one image into another and mixes the labels by area.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torchvision.transforms import v2

from zoo.tasks.base import TRAIN_LOSS, Task

__all__ = ["ClassificationTask"]


def _batch_mixer(num_classes: int, mixup_alpha: float, cutmix_alpha: float) -> Callable | None:
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise ValueError(f"mixup_alpha and cutmix_alpha must be >= 0, got {mixup_alpha} and {cutmix_alpha}")
    mixers = []
    if mixup_alpha > 0:
        mixers.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
    if cutmix_alpha > 0:
        mixers.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)


class ClassificationTask(Task):
    """Train ``model`` with cross-entropy; optimiser, schedule and checkpoint metric as in :class:`Task`."""

    task_name = "classification"
    default_monitor = "val/acc"
    logged_metrics = ("val/acc", "val/loss", "train/acc", *TRAIN_LOSS)

    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        *,
        num_classes: int,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        **task_options,
    ) -> None:
        super().__init__(model, optimizer, scheduler, **task_options)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.mixer = _batch_mixer(num_classes, mixup_alpha, cutmix_alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _check_batch(self, labels: torch.Tensor) -> None:
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"labels must lie in 0..{self.num_classes - 1} for a {self.num_classes}-class model, "
                f"got values from {int(labels.min())} to {int(labels.max())}"
            )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        self._check_batch(labels)
        targets = labels
        if self.mixer is not None:
            images, targets = self.mixer(images, labels)
        logits, aux_outputs = self._split_outputs(self.model(images))
        loss = F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        for weight, aux_logits in aux_outputs:
            loss = loss + weight * F.cross_entropy(aux_logits, targets, label_smoothing=self.label_smoothing)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def _split_outputs(self, outputs) -> tuple[torch.Tensor, list[tuple[float, torch.Tensor]]]:
        """Main logits and ``(weight, aux_logits)`` pairs from a plain tensor or a named tuple."""
        if isinstance(outputs, torch.Tensor):
            return outputs, []
        weights = tuple(getattr(self.model, "aux_loss_weights", ()))
        logits, *aux = outputs
        if len(aux) != len(weights):
            raise ValueError(
                f"{type(self.model).__name__} returned {len(aux)} auxiliary outputs but declares "
                f"{len(weights)} aux_loss_weights"
            )
        return logits, [(w, a) for w, a in zip(weights, aux, strict=True) if a is not None]

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        self._check_batch(labels)
        logits = self.model(images)
        self.log("val/loss", F.cross_entropy(logits, labels), on_epoch=True, prog_bar=True)
        self.log("val/acc", (logits.argmax(dim=1) == labels).float().mean(), on_epoch=True, prog_bar=True)
