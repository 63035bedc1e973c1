"""PASCAL VOC average precision (Everingham et al., 2010).

The MATLAB devkit's ``VOCevaldet`` rule: detections of a class ranked by score; each is compared with the ground
truth of its image that it overlaps most (already-claimed ones included); it is a true positive if that IoU >= 0.5
and the ground truth is unclaimed, ignored if the ground truth is "difficult", a false positive otherwise. AP is the
area under the precision envelope (VOC2010+)

    AP = sum_i (r_i - r_{i-1}) * max {p_j : r_j >= r_i}        over the distinct recall levels r_i, r_0 = 0

or, with ``use_07_metric``, the VOC2007 11-point mean  (1/11) sum_{t in 0, 0.1, ..., 1} max {p_j : r_j >= t}.

Inputs are checked and grouped by :mod:`zoo.metrics.detection_inputs`, as for COCO (:mod:`zoo.metrics.coco`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import torch
from torch import Tensor

from zoo.metrics.detection_inputs import (
    EPS,
    Images,
    check_images,
    class_image_groups,
    mean_defined,
    same_group_pairs,
    stable_order,
)
from zoo.ops.boxes import paired_box_iou

__all__ = ["voc_average_precision", "voc_map"]


def voc_average_precision(recall: Tensor, precision: Tensor, use_07_metric: bool = False) -> Tensor:
    """PASCAL VOC average precision of one precision/recall curve (points in ranking order, recall non-decreasing).

    All-point (VOC2010+): area under the precision envelope ``max {p_j : r_j >= r}``. ``use_07_metric``: the mean
    of that envelope at recall 0, 0.1, ..., 1 (each threshold the double nearest i/10; the Python devkit's
    ``np.arange(0, 1.1, 0.1)`` puts 0.3, 0.6 and 0.7 a hair higher). An empty curve has AP 0. Values outside
    [0, 1] (or NaN) and a decreasing recall are a ``ValueError``.
    """
    for name, values in (("recall", recall), ("precision", precision)):
        if not isinstance(values, Tensor):
            raise TypeError(f"{name}: expected a 1-D torch.Tensor, got {type(values).__name__}")
        if values.dim() != 1:
            raise ValueError(f"{name}: expected a 1-D tensor, got shape {list(values.shape)}")
        outside = ~((values >= 0) & (values <= 1))  # NaN too
        if outside.any():
            index = int(outside.nonzero()[0])
            raise ValueError(f"{name}: expected values in [0, 1], got {values[index].item()} at index {index}")
    if len(recall) != len(precision):
        raise ValueError(f"expected recall and precision of the same length, got {len(recall)} and {len(precision)}")
    falls = recall.double().diff() < 0
    if falls.any():
        index = int(falls.nonzero()[0]) + 1
        raise ValueError(
            f"recall: expected non-decreasing values (points in ranking order), got {recall[index - 1].item()} then "
            f"{recall[index].item()} at index {index}; scikit-learn's precision_recall_curve lists recall "
            "decreasing: pass recall.flip(0), precision.flip(0)"
        )
    dtype = torch.promote_types(recall.dtype, precision.dtype)
    dtype = dtype if dtype.is_floating_point else torch.float64
    recall, precision = recall.detach().double(), precision.detach().double()
    if use_07_metric:
        points = torch.arange(11, dtype=torch.float64) / 10
        reached = recall[None, :] >= points[:, None]
        best = torch.cat([torch.where(reached, precision, 0.0), torch.zeros(11, 1, dtype=torch.float64)], 1).amax(1)
        return best.mean().to(dtype)  # the zero column: a threshold no recall reaches scores 0
    levels = torch.cat([recall.new_zeros(1), recall, recall.new_ones(1)])
    envelope = torch.cat([precision.new_zeros(1), precision, precision.new_zeros(1)])
    envelope = envelope.flip(0).cummax(0).values.flip(0)
    step = levels[1:] != levels[:-1]
    return ((levels[1:] - levels[:-1])[step] * envelope[1:][step]).sum().to(dtype)


def _voc_outcomes(images: Images, classes: Tensor, threshold: float, rank: Tensor) -> tuple[Tensor, Tensor]:
    """True positives and ignored (difficult) detections under the devkit rule; ``rank``: position in the ranking."""
    count = len(images.gts["labels"])
    det_index, gt_index, _ = same_group_pairs(*class_image_groups(images, classes))
    iou = paired_box_iou(images.dets["boxes"][det_index], images.gts["boxes"][gt_index], eps=0.0)
    best = torch.full((len(rank),), -1.0, dtype=torch.float64).scatter_reduce(0, det_index, iou, "amax")
    # The devkit keeps the first ground truth of the highest overlap (its scan replaces only on a strictly higher one).
    top = iou == best[det_index]
    nearest = torch.full((len(rank),), count).scatter_reduce(0, det_index[top], gt_index[top], "amin")
    hit = best >= threshold
    difficult = hit & torch.cat([images.gts["difficult"], torch.zeros(1, dtype=torch.bool)])[nearest]
    claim = hit & ~difficult
    # Each ground truth goes to the first-ranked detection claiming it; the later ones are false positives.
    first = torch.full((count + 1,), len(rank)).scatter_reduce(0, nearest[claim], rank[claim], "amin")
    return claim & (rank == first[nearest]), difficult


def voc_map(
    preds: Sequence[Mapping[str, Tensor]],
    targets: Sequence[Mapping[str, Tensor]],
    iou_threshold: float = 0.5,
    use_07_metric: bool = False,
) -> dict[str, Tensor]:
    """PASCAL VOC mAP: per-class :func:`voc_average_precision` of the devkit matching, averaged over the classes.

    Same inputs as :func:`mean_average_precision` (``iscrowd`` and ``area`` unused); targets may carry
    ``difficult [M]`` flags (not counted as positives; a detection whose best overlap is a difficult box is dropped).
    A match needs IoU >= ``iou_threshold`` (the MATLAB devkit's rule; the Python ``voc_eval.py`` uses >), areas
    without "+1" (torchvision's convention; the devkits add 1 pixel to widths and heights). Returns ``map``,
    ``map_per_class`` (-1 for a class with no non-difficult ground truth, left out of ``map``) and ``classes``, as
    float32 / int32.
    """
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)) or not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold: expected a number in (0, 1], got {iou_threshold!r}")
    images = check_images(preds, targets)
    dets, gts = images.dets, images.gts
    classes = torch.unique(torch.cat([dets["labels"], gts["labels"]]))
    label = torch.searchsorted(classes, dets["labels"])
    order = stable_order(label, -dets["scores"])  # ties in image order, as a stable sort of the devkit's list
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    true_pos, difficult = _voc_outcomes(images, classes, iou_threshold, rank)
    false_pos = (~true_pos & ~difficult)[order]
    true_pos = true_pos[order]
    positives = torch.bincount(torch.searchsorted(classes, gts["labels"][~gts["difficult"]]), minlength=len(classes))
    bounds = torch.searchsorted(label[order], torch.arange(len(classes) + 1)).tolist()
    average_precision = torch.full((len(classes),), -1.0, dtype=torch.float64)
    # A handful of classes, each a short cumulative sum and one call.
    for k, (start, stop) in enumerate(pairwise(bounds)):
        if positives[k] == 0:
            continue
        tp = true_pos[start:stop].double().cumsum(0)
        fp = false_pos[start:stop].double().cumsum(0)
        recall, precision = tp / positives[k], tp / (tp + fp).clamp(min=EPS)
        average_precision[k] = voc_average_precision(recall, precision, use_07_metric)
    return {
        "map": mean_defined(average_precision).float(),
        "map_per_class": average_precision.float(),
        "classes": classes.int(),
    }
