"""Semantic segmentation as a LightningModule, for models with torchvision's segmentation outputs.

The model returns ``{"out": logits (N, C, H, W), "aux": logits}`` (``aux`` only when it has an auxiliary
head; a plain tensor is taken as ``out``) at the input resolution. The loss per output is chosen by
``loss``: cross-entropy with ``ignore_index``, soft Dice over the classes, or their sum,

    L = L(out) + aux_weight · L(aux)          (aux_weight 0.5, as in torchvision's reference scripts)

Validation accumulates a confusion matrix (:class:`zoo.metrics.segmentation.SegmentationMetrics`) and logs
``val/pixel_acc`` and ``val/miou``, the latter deciding the best checkpoint by default.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from zoo.constants import IGNORE_INDEX
from zoo.data.segmentation import check_mask
from zoo.metrics.segmentation import SegmentationMetrics
from zoo.ops.losses import dice_loss
from zoo.tasks.base import TRAIN_LOSS, Task

__all__ = ["LOSSES", "SegmentationTask"]

LOSSES = ("ce", "dice", "ce+dice")


class SegmentationTask(Task):
    """Train a segmentation model on ``(images, masks)`` batches; validate with pixel accuracy and mIoU."""

    task_name = "segmentation"
    default_monitor = "val/miou"
    logged_metrics = ("val/miou", "val/pixel_acc", "val/loss", *TRAIN_LOSS, "train/loss_aux")

    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        *,
        num_classes: int,
        loss: str = "ce",
        aux_weight: float = 0.5,
        ignore_index: int = IGNORE_INDEX,
        **task_options,
    ) -> None:
        super().__init__(model, optimizer, scheduler, **task_options)
        if loss not in LOSSES:
            raise ValueError(f"task.loss must be one of {LOSSES}, got {loss!r}")
        if aux_weight < 0:
            raise ValueError(f"task.aux_weight must be >= 0, got {aux_weight}")
        self.num_classes, self.loss_name, self.aux_weight = num_classes, loss, aux_weight
        self.ignore_index = ignore_index
        self.val_metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index)

    def forward(self, images: Tensor) -> Tensor:
        return self._outputs(self.model(images))["out"]

    @staticmethod
    def _outputs(outputs: Tensor | dict[str, Tensor]) -> dict[str, Tensor]:
        return {"out": outputs} if isinstance(outputs, Tensor) else outputs

    def _loss(self, logits: Tensor, masks: Tensor) -> Tensor:
        if logits.shape[-2:] != masks.shape[-2:]:
            raise ValueError(f"model output is {tuple(logits.shape[-2:])} but masks are {tuple(masks.shape[-2:])}")
        loss = logits.new_zeros(())
        if "ce" in self.loss_name:
            loss = loss + F.cross_entropy(logits, masks, ignore_index=self.ignore_index)
        if "dice" in self.loss_name:
            loss = loss + dice_loss(logits, masks, ignore_index=self.ignore_index)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, masks = batch
        check_mask(masks, self.num_classes, self.ignore_index, where="training masks")
        outputs = self._outputs(self.model(images))
        main = self._loss(outputs["out"], masks)
        loss = main
        if outputs.get("aux") is not None:
            aux = self._loss(outputs["aux"], masks)
            loss = main + self.aux_weight * aux
            self.log("train/loss_aux", aux, on_step=False, on_epoch=True)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, masks = batch
        check_mask(masks, self.num_classes, self.ignore_index, where="validation masks")
        logits = self._outputs(self.model(images))["out"]
        self.log("val/loss", self._loss(logits, masks), on_epoch=True, prog_bar=True)
        self.val_metrics.update(logits.argmax(dim=1), masks)

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()

    def on_validation_epoch_end(self) -> None:
        results = self.val_metrics.compute()
        self.log("val/pixel_acc", float(results["pixel_accuracy"]))
        self.log("val/miou", float(results["mean_iou"]), prog_bar=True)
        self.val_metrics.reset()
