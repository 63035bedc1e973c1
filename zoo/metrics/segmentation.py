"""Semantic-segmentation metrics from one confusion matrix over every pixel: pixel accuracy, per-class IoU, Dice.

    pixel accuracy = Σ_c TP_c / (number of pixels)
    IoU_c          = TP_c / (TP_c + FP_c + FN_c)            (Jaccard index)
    Dice_c         = 2 TP_c / (2 TP_c + FP_c + FN_c)        (the per-class F1 score)

Conventions (those of torchmetrics' ``MulticlassJaccardIndex`` and of mmsegmentation's mIoU):

* Counts are summed over all pixels of all images before dividing ("global"), not averaged per image as
  ``torchmetrics.segmentation.MeanIoU`` does.
* A class absent from both prediction and target has 0/0: it scores NaN and the means skip it. torchmetrics' macro
  average gives such a class weight 0, which is the same mean; its per-class output (``average="none"``) writes
  ``zero_division`` (0) there instead of NaN, and ``torchmetrics.segmentation.MeanIoU`` writes -1.
* Pixels whose target is ``ignore_index`` are dropped before counting. If ``ignore_index`` is itself a class index,
  that class scores NaN (torchmetrics likewise leaves it out of its macro mean).

The confusion matrix is :func:`zoo.metrics.labels.confusion_matrix` (one bincount), re-exported here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.metrics.labels import ConfusionMatrix, confusion_matrix

__all__ = [
    "confusion_matrix",
    "pixel_accuracy",
    "iou_per_class",
    "mean_iou",
    "dice_per_class",
    "mean_dice",
    "SegmentationMetrics",
]


def _pixel_accuracy(confusion: Tensor) -> Tensor:
    confusion = confusion.double()
    return confusion.trace() / confusion.sum()


def _per_class(confusion: Tensor, ignore_index: int | None, *, dice: bool) -> Tensor:
    """IoU (or Dice) per class; 0/0 for a class absent from prediction and target gives the NaN we want."""
    confusion = confusion.double()
    true_positives = confusion.diagonal()
    predicted_plus_actual = confusion.sum(0) + confusion.sum(1)  # 2 TP + FP + FN
    if dice:
        scores = 2 * true_positives / predicted_plus_actual
    else:
        scores = true_positives / (predicted_plus_actual - true_positives)
    if ignore_index is not None and 0 <= ignore_index < scores.numel():
        scores[ignore_index] = torch.nan
    return scores


def pixel_accuracy(preds: Tensor, targets: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """Fraction of non-ignored pixels predicted right (torchmetrics' ``MulticlassAccuracy(average="micro")``).

    ``targets``: ``[N, H, W]`` class indices; ``preds``: ``[N, H, W]`` class indices or ``[N, C, H, W]`` logits
    (argmax). Float64 scalar, NaN when no pixel is left.
    """
    return _pixel_accuracy(confusion_matrix(preds, targets, num_classes, ignore_index))


def iou_per_class(preds: Tensor, targets: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """``[C]`` IoU per class (torchmetrics' ``MulticlassJaccardIndex(average="none")``); NaN for a class absent
    from both prediction and target, and for ``ignore_index`` if it is a class."""
    return _per_class(confusion_matrix(preds, targets, num_classes, ignore_index), ignore_index, dice=False)


def mean_iou(preds: Tensor, targets: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """Mean of :func:`iou_per_class` over the classes that are not NaN (``MulticlassJaccardIndex(average="macro")``)."""
    return iou_per_class(preds, targets, num_classes, ignore_index).nanmean()


def dice_per_class(preds: Tensor, targets: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """``[C]`` Dice per class (torchmetrics' ``dice_score(average="none", aggregation_level="global")``); NaN as in
    :func:`iou_per_class`."""
    return _per_class(confusion_matrix(preds, targets, num_classes, ignore_index), ignore_index, dice=True)


def mean_dice(preds: Tensor, targets: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """Mean of :func:`dice_per_class` over the classes that are not NaN."""
    return dice_per_class(preds, targets, num_classes, ignore_index).nanmean()


class SegmentationMetrics(ConfusionMatrix):
    """Running confusion matrix whose ``compute()`` gives every metric above as a dict of float64 tensors:
    ``pixel_accuracy``, ``mean_iou``, ``iou_per_class``, ``mean_dice``, ``dice_per_class``."""

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        super().__init__(num_classes, ignore_index)

    def compute(self) -> dict[str, Tensor]:
        iou = _per_class(self.confusion, self.ignore_index, dice=False)
        dice = _per_class(self.confusion, self.ignore_index, dice=True)
        return {
            "pixel_accuracy": _pixel_accuracy(self.confusion),
            "mean_iou": iou.nanmean(),
            "iou_per_class": iou,
            "mean_dice": dice.nanmean(),
            "dice_per_class": dice,
        }
