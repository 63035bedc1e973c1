"""COCO mean average precision and recall (Lin et al., 2014), of boxes or of instance masks.

Exactly as ``pycocotools.cocoeval.COCOeval`` with ``iouType="bbox"``, or ``"segm"`` for masks. For a class c, an IoU
threshold t, an area range a and a cap of m detections per image and class:

    keep the m highest-scoring detections of c in each image and rank them all by score (ties: image order);
    walking down the ranking, each detection takes the free ground truth of its image with the highest IoU >= t,
        preferring regular ground truths to ignored ones (crowds, boxes outside a); a crowd may be taken many times,
        and its "IoU" is the intersection over the detection's area;
    a detection that took an ignored ground truth, or took none and lies outside a, counts neither way;
    precision_i = TP_i / (TP_i + FP_i)   recall_i = TP_i / n      (n: regular ground truths of c in range a)
    p_interp(r) = max {precision_i : recall_i >= r}
    AP = mean of p_interp(r) over r in {0, 0.01, ..., 1}           AR = the recall at the end of the ranking

Boxes: IoU = |A ∩ B| / |A ∪ B| of the xyxy boxes. Masks: the same over pixels, |A ∩ B| / (|A| + |B| - |A ∩ B|) with
|A| a mask's pixel count, 0 where they share no pixel; a crowd's "IoU" is then |A ∩ B| / |A| too.
Area ranges (all, small, medium, large) are [0, 1e10], [0, 32²], [32², 96²], [96², 1e10], inclusive at both ends, on
the ground truth's ``area`` (unless given, the xyxy box area without "+1", or the mask's pixel count) and the
detection's box area (mask pixel count). ``map``
averages AP over the IoU thresholds 0.50:0.05:0.95 and the classes with a regular ground truth in range, at m = 100;
``mar_1/10/100`` average AR the same way at each cap. A value with nothing to average is -1. The output keys, dtypes
and -1 conventions are those of ``torchmetrics.detection.MeanAveragePrecision`` (``iou_type="bbox"`` or ``"segm"``).

Inputs are checked and grouped by :mod:`zoo.metrics.detection_inputs`; PASCAL VOC's AP is :mod:`zoo.metrics.voc`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import torch
from torch import Tensor

from zoo.metrics.base import Metric
from zoo.metrics.detection_inputs import (
    EPS,
    Images,
    check_images,
    class_image_groups,
    mean_defined,
    merge_images,
    same_group_pairs,
    stable_order,
)
from zoo.ops.boxes import box_area, paired_box_iou

__all__ = ["mean_average_precision", "MeanAveragePrecision"]

# pycocotools' area ranges (lower, upper), both inclusive: all, small, medium, large.
_AREA_RANGES = torch.tensor([[0.0, 1e5**2], [0.0, 32.0**2], [32.0**2, 96.0**2], [96.0**2, 1e5**2]], dtype=torch.float64)


def _numpy_linspace(start: float, stop: float, num: int) -> Tensor:
    """``np.linspace(start, stop, num)`` bit for bit (``start + i * step``, last value ``stop``).

    pycocotools builds its thresholds this way; a recall of exactly 29/100 sits just below its threshold "0.29", so
    the thresholds must be the same doubles, not merely close.
    """
    values = torch.arange(num, dtype=torch.float64) * ((stop - start) / (num - 1)) + start
    values[-1] = stop
    return values


# ---------------------------------------------------------------------------------------------------------- settings


def _check_thresholds(values: object, name: str, default: Tensor) -> Tensor:
    if values is None:
        return default
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if values.numel() == 0 or not ((values >= 0) & (values <= 1)).all():
        raise ValueError(f"{name}: expected a non-empty list of values in [0, 1], got {values.tolist()}")
    return values


def _check_max_detections(values: object) -> list[int]:
    if values is None:
        return [1, 10, 100]
    values = list(values)
    if len(values) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"max_detection_thresholds: expected three positive ints, got {values}")
    return sorted(values)  # torchmetrics sorts them: the last one caps the matching


def _check_iou_type(iou_type: object) -> str:
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type: expected 'bbox' (boxes) or 'segm' (instance masks), got {iou_type!r}")
    return iou_type


# ------------------------------------------------------------------------------------------------------- matching


def _rank_in_group(sorted_groups: Tensor) -> Tensor:
    """Position of each row within its run of equal values in the sorted ``sorted_groups``."""
    return torch.arange(len(sorted_groups)) - torch.searchsorted(sorted_groups, sorted_groups)


def _pair_overlaps(det_boxes: Tensor, gt_boxes: Tensor, crowd: Tensor) -> Tensor:
    """IoU of matching rows; against a crowd, the share of the detection's area inside it (pycocotools' rule)."""
    iou = paired_box_iou(det_boxes, gt_boxes, eps=0.0)
    if not crowd.any():
        return iou
    size = torch.min(det_boxes[:, 2:], gt_boxes[:, 2:]) - torch.max(det_boxes[:, :2], gt_boxes[:, :2])
    inside = size.clamp(min=0).prod(dim=-1)
    return torch.where(crowd, torch.where(inside > 0, inside / box_area(det_boxes), 0.0), iou)


def _mask_pair_overlaps(images: Images, det_rows: Tensor, gt_rows: Tensor, crowd: Tensor) -> Tensor:
    """Mask IoU of detection ``det_rows[i]`` and ground truth ``gt_rows[i]`` of one image, read from the images'
    intersection counts; against a crowd, the share of the detection's pixels inside it; 0 where they share none."""
    dets, gts = images.dets, images.gts
    det_counts = torch.bincount(dets["image"], minlength=images.num_images)
    gt_counts = torch.bincount(gts["image"], minlength=images.num_images)
    image = dets["image"][det_rows]
    # The tables hold the images in turn: a row's position in its image is its distance to the image's first row.
    det_in_image = det_rows - (det_counts.cumsum(0) - det_counts)[image]
    gt_in_image = gt_rows - (gt_counts.cumsum(0) - gt_counts)[image]
    block_sizes = det_counts * gt_counts
    block = (block_sizes.cumsum(0) - block_sizes)[image]
    shared = images.intersections[block + det_in_image * gt_counts[image] + gt_in_image]
    det_area = dets["area"][det_rows]
    union = torch.where(crowd, det_area, det_area + gts["mask_area"][gt_rows] - shared)
    return torch.where(shared > 0, shared / union.clamp(min=1), 0.0)


def _greedy_match(
    ious: Tensor, counts: Tensor, starts: Tensor, gt_ignore: Tensor, crowd: Tensor, thresholds: Tensor
) -> tuple[Tensor, Tensor]:
    """pycocotools' greedy matching for every group (image, class), area range and IoU threshold at once.

    ``ious [D, W]``: each kept detection against its group's ground truths (-1 pads), rows grouped, best score first;
    ``counts``, ``starts``: each group's detections and first row, sorted by ``counts`` descending (0: skip);
    ``gt_ignore [G, A, W]``, ``crowd [G, W]``. Returns ``found`` and ``took_ignored`` ``[D, A, T]``.
    """
    num_areas, width = gt_ignore.shape[1:]
    threshold = thresholds.clamp(max=1 - 1e-10)[None, None, :, None]  # pycocotools caps t just below 1
    taken = torch.zeros(len(counts), num_areas, len(thresholds), width, dtype=torch.bool)
    found = torch.zeros(len(ious), num_areas, len(thresholds), dtype=torch.bool)
    took_ignored = torch.zeros_like(found)
    columns = torch.arange(width)
    # A ground truth taken by a higher score is gone for the next detection, so the ranks are walked in turn (at
    # most the detection cap); every group, area range and threshold advances together.
    for rank in range(int(counts[0]) if len(counts) else 0):
        active = int((counts > rank).sum())  # the groups still holding a detection of this rank come first
        rows = starts[:active] + rank
        iou = ious[rows][:, None, None, :]
        ignore = gt_ignore[:active, :, None, :].expand(-1, -1, len(thresholds), -1)
        free = ~taken[:active] | crowd[:active, None, None, :]
        candidate = free & (iou >= threshold)
        regular = candidate & ~ignore
        pool = torch.where(regular.any(-1, keepdim=True), regular, candidate)  # ignored ones only as a last resort
        # On equal IoU the later ground truth wins (pycocotools replaces its best when not strictly worse).
        best = width - 1 - torch.where(pool, iou, -1.0).flip(-1).argmax(-1)
        hit = pool.any(-1)
        taken[:active] |= (columns == best[..., None]) & hit[..., None]
        found[rows] = hit
        took_ignored[rows] = hit & ignore.gather(-1, best[..., None]).squeeze(-1)
    return found, took_ignored


def _coco_match(
    images: Images, classes: Tensor, gt_ignore: Tensor, thresholds: Tensor, max_det: int
) -> tuple[Tensor, ...]:
    """Keep ``max_det`` detections per image and class and match them (``gt_ignore [M, A]``).

    Returns the kept detections' indices (grouped by class then image, best score first), their rank in the group,
    and ``found``, ``ignored`` ``[D, A, T]``.
    """
    dets, gts = images.dets, images.gts
    det_group, gt_group, num_groups = class_image_groups(images, classes)
    order = stable_order(det_group, -dets["scores"])
    rank = _rank_in_group(det_group[order])
    kept, rank = order[rank < max_det], rank[rank < max_det]
    groups, group_row, counts = torch.unique_consecutive(det_group[kept], return_inverse=True, return_counts=True)
    starts = counts.cumsum(0) - counts

    # Each kept detection's row of IoUs with its group's ground truths, -1 where there is none.
    det_index, gt_index, slot = same_group_pairs(det_group[kept], gt_group, num_groups)
    width = int(slot.max()) + 1 if len(slot) else 0
    ious = torch.full((len(kept), width), -1.0, dtype=torch.float64)
    crowd = gts["iscrowd"][gt_index]
    if images.intersections is None:
        ious[det_index, slot] = _pair_overlaps(dets["boxes"][kept[det_index]], gts["boxes"][gt_index], crowd)
    else:
        ious[det_index, slot] = _mask_pair_overlaps(images, kept[det_index], gt_index, crowd)
    padded_ignore = torch.ones(len(groups), len(_AREA_RANGES), width, dtype=torch.bool)
    padded_ignore[group_row[det_index], :, slot] = gt_ignore[gt_index]
    padded_crowd = torch.zeros(len(groups), width, dtype=torch.bool)
    padded_crowd[group_row[det_index], slot] = crowd

    # A group without ground truths has nothing to match: its count goes to 0 and it sorts last.
    has_gt = torch.zeros(len(groups), dtype=torch.bool)
    has_gt[group_row[det_index]] = True
    counts = torch.where(has_gt, counts, 0)
    by_size = torch.sort(counts, descending=True, stable=True).indices
    found, took_ignored = _greedy_match(
        ious, counts[by_size], starts[by_size], padded_ignore[by_size], padded_crowd[by_size], thresholds
    )
    outside = _outside_ranges(dets["area"][kept])
    return kept, rank, found, took_ignored | (~found & outside[:, :, None])


def _outside_ranges(area: Tensor) -> Tensor:
    """``[N, A]``: whether each area lies outside each of the area ranges."""
    return (area[:, None] < _AREA_RANGES[:, 0]) | (area[:, None] > _AREA_RANGES[:, 1])


def _coco_curves(
    images: Images,
    classes: Tensor,
    iou_thresholds: Tensor,
    rec_thresholds: Tensor,
    max_dets: list[int],
) -> tuple[Tensor, Tensor]:
    """Interpolated precision ``[K, A, caps, T, R]`` and recall ``[K, A, caps, T]``, -1 where a class has no
    regular ground truth in the area range (pycocotools' ``eval["precision"]`` and ``eval["recall"]``, reordered)."""
    dets, gts = images.dets, images.gts
    gt_ignore = gts["iscrowd"][:, None] | _outside_ranges(gts["area"])  # [M, A]
    kept, rank, found, ignored = _coco_match(images, classes, gt_ignore, iou_thresholds, max_dets[-1])
    label = torch.searchsorted(classes, dets["labels"][kept])
    # Each class ranked over all images; ties keep image order, then rank, as pycocotools' stable sort does.
    order = stable_order(label, -dets["scores"][kept])
    label, rank, found, ignored = label[order], rank[order], found[order], ignored[order]
    bounds = torch.searchsorted(label, torch.arange(len(classes) + 1)).tolist()
    positives = torch.zeros(len(classes), len(_AREA_RANGES), dtype=torch.float64)
    positives.index_add_(0, torch.searchsorted(classes, gts["labels"]), (~gt_ignore).double())
    caps = torch.tensor(max_dets)[:, None]
    shape = (len(classes), len(_AREA_RANGES), len(max_dets), len(iou_thresholds))
    precision = torch.full((*shape, len(rec_thresholds)), -1.0, dtype=torch.float64)
    recall = torch.full(shape, -1.0, dtype=torch.float64)
    # One class at a time: [areas, caps, thresholds, detections] per class stays small even on COCO-sized sets.
    for k, (start, stop) in enumerate(pairwise(bounds)):
        if positives[k, 0] == 0:
            continue  # no regular ground truth in any range (the "all" range holds every other range's)
        counted = ~ignored[start:stop].permute(1, 2, 0)[:, None] & (rank[start:stop] < caps)[None, :, None]
        hits = found[start:stop].permute(1, 2, 0)[:, None] & counted  # [A, caps, T, n]
        true_pos = hits.double().cumsum(-1)
        false_pos = (counted & ~hits).double().cumsum(-1)
        npos = positives[k].clamp(min=1)[:, None, None, None]
        recall_curve = true_pos / npos
        envelope = (true_pos / (false_pos + true_pos + EPS)).flip(-1).cummax(-1).values.flip(-1)
        # Beyond the last recall reached the precision is 0: one sentinel column catches those thresholds.
        sentinel = (*recall_curve.shape[:-1], 1)
        recall_curve = torch.cat([recall_curve, torch.full(sentinel, torch.inf, dtype=torch.float64)], -1)
        envelope = torch.cat([envelope, torch.zeros(sentinel, dtype=torch.float64)], -1)
        index = torch.searchsorted(recall_curve, rec_thresholds.expand(*sentinel[:-1], -1).contiguous())
        precision[k] = envelope.gather(-1, index)
        recall[k] = hits.sum(-1) / npos[..., 0]
    undefined = positives == 0
    precision[undefined] = -1.0
    recall[undefined] = -1.0
    return precision, recall


def _coco_summary(
    precision: Tensor,
    recall: Tensor,
    classes: Tensor,
    iou_thresholds: Tensor,
    max_dets: list[int],
    class_metrics: bool,
) -> dict[str, Tensor]:
    """torchmetrics' result dict: COCOeval's twelve ``stats`` plus the per-class values and the classes."""
    last = len(max_dets) - 1
    at_cap = precision[:, 0, last]  # [K, T, R], area "all"
    # COCOeval reads its headline AP at a cap of 100 whatever the caps are: -1 when 100 is not among them.
    at_100 = precision[:, 0, torch.tensor(max_dets) == 100]
    result = {
        "map": mean_defined(at_100),
        "map_50": mean_defined(at_cap[:, iou_thresholds == 0.5]),  # -1 when 0.5 is not a threshold
        "map_75": mean_defined(at_cap[:, iou_thresholds == 0.75]),
        "map_small": mean_defined(precision[:, 1, last]),
        "map_medium": mean_defined(precision[:, 2, last]),
        "map_large": mean_defined(precision[:, 3, last]),
        **{f"mar_{cap}": mean_defined(recall[:, 0, index]) for index, cap in enumerate(max_dets)},
        "mar_small": mean_defined(recall[:, 1, last]),
        "mar_medium": mean_defined(recall[:, 2, last]),
        "mar_large": mean_defined(recall[:, 3, last]),
    }
    if class_metrics:
        result["map_per_class"] = mean_defined(at_100, start_dim=1)
        result[f"mar_{max_dets[-1]}_per_class"] = mean_defined(recall[:, 0, last], start_dim=1)
    else:
        result["map_per_class"] = torch.tensor(-1.0)
        result[f"mar_{max_dets[-1]}_per_class"] = torch.tensor(-1.0)
    result = {key: value.float() for key, value in result.items()}
    result["classes"] = classes.int()
    return result


def _coco_evaluate(
    images: Images, iou_thresholds: Tensor, rec_thresholds: Tensor, max_dets: list[int], class_metrics: bool
) -> dict[str, Tensor]:
    classes = torch.unique(torch.cat([images.dets["labels"], images.gts["labels"]]))
    precision, recall = _coco_curves(images, classes, iou_thresholds, rec_thresholds, max_dets)
    return _coco_summary(precision, recall, classes, iou_thresholds, max_dets, class_metrics)


def _coco_settings(
    iou_thresholds: object, rec_thresholds: object, max_detection_thresholds: object, class_metrics: object
) -> tuple[Tensor, Tensor, list[int], bool]:
    if not isinstance(class_metrics, bool):
        raise TypeError(f"class_metrics: expected a bool, got {type(class_metrics).__name__}")
    return (
        _check_thresholds(iou_thresholds, "iou_thresholds", _numpy_linspace(0.5, 0.95, 10)),
        _check_thresholds(rec_thresholds, "rec_thresholds", _numpy_linspace(0.0, 1.0, 101)),
        _check_max_detections(max_detection_thresholds),
        class_metrics,
    )


def mean_average_precision(
    preds: Sequence[Mapping[str, Tensor]],
    targets: Sequence[Mapping[str, Tensor]],
    iou_thresholds: Sequence[float] | None = None,
    rec_thresholds: Sequence[float] | None = None,
    max_detection_thresholds: Sequence[int] | None = None,
    class_metrics: bool = False,
    iou_type: str = "bbox",
) -> dict[str, Tensor]:
    """COCO box or mask mAP / mAR of one set of images, as ``COCOeval`` and ``torchmetrics``' ``MeanAveragePrecision``.

    ``preds``: one dict per image with ``boxes [N, 4]`` (xyxy), ``scores [N]``, ``labels [N]``; ``targets``: one
    dict per image with ``boxes [M, 4]``, ``labels [M]`` and optionally ``iscrowd [M]`` and ``area [M]`` (used
    where positive). ``iou_type="segm"`` scores instance masks instead: both sides then need ``masks``, bool or 0/1
    uint8 ``[N, H, W]`` of one size per image, and their ``boxes`` may be left out. Defaults: IoU thresholds
    0.50:0.05:0.95 and recall thresholds 0:0.01:1, both as pycocotools builds them (torchmetrics' defaults are the
    float32 roundings of these, which can move a value that sits exactly on a threshold), and 1, 10, 100 detections
    per image and class. Returns float32 scalars ``map, map_50, map_75, map_small, map_medium, map_large, mar_1,
    mar_10, mar_100, mar_small, mar_medium, mar_large``, then
    ``map_per_class`` and ``mar_100_per_class`` (``[K]`` with ``class_metrics``, else -1) and ``classes`` (int32,
    every label seen in either). A value with nothing to average (e.g. no small ground truth) is -1. As in
    COCOeval, ``map`` and ``map_per_class`` are read at a cap of 100 detections whatever the caps (-1 without 100),
    the other precision values and ``mar_small/medium/large`` at the largest cap.
    """
    settings = _coco_settings(iou_thresholds, rec_thresholds, max_detection_thresholds, class_metrics)
    return _coco_evaluate(check_images(preds, targets, _check_iou_type(iou_type) == "segm"), *settings)


class MeanAveragePrecision(Metric):
    """Accumulating form of :func:`mean_average_precision`: ``update(preds, targets)`` per batch, ``compute()``.

    Inputs are validated and copied to the CPU on ``update`` (masks reduced there to their pixel counts and shared
    pixels, so a validation set's masks are never held); the evaluation runs over all of them on ``compute``.
    """

    def __init__(
        self,
        iou_thresholds: Sequence[float] | None = None,
        rec_thresholds: Sequence[float] | None = None,
        max_detection_thresholds: Sequence[int] | None = None,
        class_metrics: bool = False,
        iou_type: str = "bbox",
    ) -> None:
        self._settings = _coco_settings(iou_thresholds, rec_thresholds, max_detection_thresholds, class_metrics)
        self._with_masks = _check_iou_type(iou_type) == "segm"
        super().__init__()

    def reset(self) -> None:
        self._batches: list[Images] = []

    def update(self, preds: Sequence[Mapping[str, Tensor]], targets: Sequence[Mapping[str, Tensor]]) -> None:
        self._batches.append(check_images(preds, targets, self._with_masks))

    def compute(self) -> dict[str, Tensor]:
        return _coco_evaluate(merge_images(self._batches, self._with_masks), *self._settings)
