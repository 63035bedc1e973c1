"""Object detection as a LightningModule, for any detector with torchvision's interface.

In training the model takes ``(images, targets)`` and returns a dict of losses; the task minimises their
sum and logs each. In validation the model (in eval mode) returns ``[{"boxes", "scores", "labels"}]`` per
image, which :class:`zoo.metrics.coco.MeanAveragePrecision` accumulates with COCO's rules; the epoch
logs ``val/map`` (IoU 0.50:0.95) and ``val/map_50``, the latter deciding the best checkpoint by default.
Where the detections carry ``"masks"`` (Mask R-CNN: ``[D, 1, H, W]`` probabilities, binarised at 0.5 as
torchvision's reference evaluation does) and the targets do too (``data.with_masks``), a second accumulator scores
the masks (``iou_type="segm"``) and the epoch also logs ``val/mask_map`` and ``val/mask_map_50``; the boxes still
decide the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from zoo.metrics.coco import MeanAveragePrecision
from zoo.tasks.base import TRAIN_LOSS, Task

__all__ = ["DetectionTask"]

LOGGED_METRICS = ("map", "map_50", "map_75", "mar_100")
LOGGED_MASK_METRICS = ("map", "map_50")  # logged as val/mask_<name>
MASK_THRESHOLD = 0.5


class DetectionTask(Task):
    """Train a detector on ``(images, targets)`` batches; validate with COCO mAP."""

    task_name = "detection"
    default_monitor = "val/map_50"
    # Each of the model's own losses is logged too (train/<name>), but those depend on the model: no monitor.
    logged_metrics = (*(f"val/{name}" for name in LOGGED_METRICS), *TRAIN_LOSS)

    def __init__(
        self,
        model: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        *,
        num_classes: int,
        **task_options,
    ) -> None:
        super().__init__(model, optimizer, scheduler, **task_options)
        self.num_classes = num_classes
        self.val_map = MeanAveragePrecision()
        self.val_mask_map = MeanAveragePrecision(iou_type="segm")
        self._masks_seen = False

    def forward(self, images: Tensor | list[Tensor]) -> list[dict[str, Tensor]]:
        return self.model(images)

    def model_inputs(self, batch: tuple[Tensor | list[Tensor], list[dict]]) -> tuple:
        return tuple(batch)

    def training_step(self, batch: tuple[Tensor | list[Tensor], list[dict]], batch_idx: int) -> Tensor:
        _, targets = batch
        losses = self.model(*self.model_inputs(batch))
        loss = sum(losses.values())
        batch_size = len(targets)
        for name, value in losses.items():
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=batch_size)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=batch_size)
        return loss

    def validation_step(self, batch: tuple[Tensor | list[Tensor], list[dict]], batch_idx: int) -> None:
        images, targets = batch
        detections = [{key: value.detach() for key, value in d.items()} for d in self.model(images)]
        self.val_map.update(detections, [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
        if all("masks" in d for d in detections) and all("masks" in t for t in targets):
            self.val_mask_map.update(
                [{**d, "masks": d["masks"][:, 0] > MASK_THRESHOLD} for d in detections],
                [{"boxes": t["boxes"], "labels": t["labels"], "masks": t["masks"]} for t in targets],
            )
            self._masks_seen = True

    def on_validation_epoch_start(self) -> None:
        self.val_map.reset()
        self.val_mask_map.reset()
        self._masks_seen = False

    def on_validation_epoch_end(self) -> None:
        results = self.val_map.compute()
        for name in LOGGED_METRICS:
            self.log(f"val/{name}", float(results[name]), prog_bar=name in ("map", "map_50"))
        if self._masks_seen:
            results = self.val_mask_map.compute()
            for name in LOGGED_MASK_METRICS:
                self.log(f"val/mask_{name}", float(results[name]))
        self.val_map.reset()
        self.val_mask_map.reset()
