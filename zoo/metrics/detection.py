"""Detection metrics: COCO mean average precision and recall, PASCAL VOC average precision.

COCO (Lin et al., 2014), exactly as ``pycocotools.cocoeval.COCOeval`` with ``iouType="bbox"``. For a class c, an IoU
threshold t, an area range a and a cap of m detections per image and class:

    keep the m highest-scoring detections of c in each image and rank them all by score (ties: image order);
    walking down the ranking, each detection takes the free ground truth of its image with the highest IoU >= t,
        preferring regular ground truths to ignored ones (crowds, boxes outside a); a crowd may be taken many times,
        and its "IoU" is the intersection over the detection's area;
    a detection that took an ignored ground truth, or took none and lies outside a, counts neither way;
    precision_i = TP_i / (TP_i + FP_i)   recall_i = TP_i / n      (n: regular ground truths of c in range a)
    p_interp(r) = max {precision_i : recall_i >= r}
    AP = mean of p_interp(r) over r in {0, 0.01, ..., 1}           AR = the recall at the end of the ranking

Area ranges (all, small, medium, large) are [0, 1e10], [0, 32²], [32², 96²], [96², 1e10], inclusive at both ends, on
the ground truth's ``area`` (the xyxy box area without "+1" unless given) and the detection's box area. ``map``
averages AP over the IoU thresholds 0.50:0.05:0.95 and the classes with a regular ground truth in range, at m = 100;
``mar_1/10/100`` average AR the same way at each cap. A value with nothing to average is -1. The output keys, dtypes
and -1 conventions are those of ``torchmetrics.detection.MeanAveragePrecision`` (default box settings).

PASCAL VOC (Everingham et al., 2010), the MATLAB devkit's ``VOCevaldet`` rule: detections of a class ranked by score;
each is compared with the ground truth of its image that it overlaps most (already-claimed ones included); it is a
true positive if that IoU >= 0.5 and the ground truth is unclaimed, ignored if the ground truth is "difficult", a
false positive otherwise. AP is the area under the precision envelope (VOC2010+)

    AP = sum_i (r_i - r_{i-1}) * max {p_j : r_j >= r_i}        over the distinct recall levels r_i, r_0 = 0

or, with ``use_07_metric``, the VOC2007 11-point mean  (1/11) sum_{t in 0, 0.1, ..., 1} max {p_j : r_j >= t}.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import NamedTuple

import torch
from torch import Tensor

from zoo.metrics.base import Metric
from zoo.ops.boxes import box_area, check_boxes, paired_box_iou

__all__ = ["mean_average_precision", "MeanAveragePrecision", "voc_average_precision", "voc_map"]

# pycocotools' area ranges (lower, upper), both inclusive: all, small, medium, large.
_AREA_RANGES = torch.tensor([[0.0, 1e5**2], [0.0, 32.0**2], [32.0**2, 96.0**2], [96.0**2, 1e5**2]], dtype=torch.float64)
_EPS = torch.finfo(torch.float64).eps  # np.spacing(1), pycocotools' guard against 0 / 0


def _numpy_linspace(start: float, stop: float, num: int) -> Tensor:
    """``np.linspace(start, stop, num)`` bit for bit (``start + i * step``, last value ``stop``).

    pycocotools builds its thresholds this way; a recall of exactly 29/100 sits just below its threshold "0.29", so
    the thresholds must be the same doubles, not merely close.
    """
    values = torch.arange(num, dtype=torch.float64) * ((stop - start) / (num - 1)) + start
    values[-1] = stop
    return values


# ---------------------------------------------------------------------------------------------------------- inputs


class _Images(NamedTuple):
    """A set of images with their boxes concatenated: ``dets`` holds ``boxes, scores, labels, image``, ``gts``
    ``boxes, labels, iscrowd, difficult, area, image`` (float64 / int64 / bool CPU tensors; ``image``: row's image)."""

    dets: dict[str, Tensor]
    gts: dict[str, Tensor]
    num_images: int


# Each field's dtype and the shape of an empty one.
_DET_FIELDS = {"boxes": (torch.float64, (0, 4)), "scores": (torch.float64, (0,)), "labels": (torch.long, (0,))}
_GT_FIELDS = {
    "boxes": (torch.float64, (0, 4)),
    "labels": (torch.long, (0,)),
    "iscrowd": (torch.bool, (0,)),
    "difficult": (torch.bool, (0,)),
    "area": (torch.float64, (0,)),
}
_KINDS = {"scores": "real", "area": "real", "labels": "integer", "iscrowd": "flag", "difficult": "flag"}


def _require(mapping: object, keys: tuple[str, ...], name: str) -> Mapping:
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{name}: expected a dict with keys {list(keys)}, got {type(mapping).__name__}")
    missing = [key for key in keys if key not in mapping]
    if missing:
        raise ValueError(f"{name}: missing key(s) {missing}; expected {list(keys)}, got {list(mapping)}")
    return mapping


def _field(value: object, name: str, key: str, length: int) -> Tensor:
    """One image's field as a CPU tensor, its type and shape checked (values are checked over all images at once)."""
    if key == "boxes":
        if isinstance(value, Tensor) and value.numel() == 0:
            return value.detach().cpu().reshape(0, 4)  # an empty image may come as shape [0]
        return check_boxes(value, name, check_order=False).detach().cpu()
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape [{length}], got {type(value).__name__}")
    value = value.detach().cpu()
    if value.numel() == 0:
        value = value.reshape(0)
    if value.dim() != 1 or len(value) != length:
        raise ValueError(f"{name}: expected shape [{length}] (one entry per box), got {list(value.shape)}")
    kind = _KINDS[key]
    integer = not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)
    if (kind == "integer" and not integer) or (kind == "real" and (value.is_complex() or value.dtype == torch.bool)):
        expected = "an integer tensor of class labels" if kind == "integer" else "a real-valued tensor"
        raise TypeError(f"{name}: expected {expected}, got {value.dtype}")
    return value


def _concatenate(parts: dict[str, list[Tensor]], fields: dict, role: str) -> dict[str, Tensor]:
    flat = {
        key: torch.cat([torch.zeros(shape, dtype=dtype), *parts[key]]).to(dtype)
        for key, (dtype, shape) in fields.items()
    }
    counts = torch.tensor([len(boxes) for boxes in parts["boxes"]], dtype=torch.long)
    flat["image"] = torch.repeat_interleave(torch.arange(len(counts)), counts)
    try:
        check_boxes(flat["boxes"], f"{role} boxes")
    except ValueError:
        for index, boxes in enumerate(parts["boxes"]):
            check_boxes(boxes, f"{role}[{index}]['boxes']")  # raises again, naming the image
        raise
    return flat


def _check_images(preds: object, targets: object) -> _Images:
    """Validate torchvision-style per-image dicts and concatenate them."""
    for name, value in (("preds", preds), ("targets", targets)):
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
            raise TypeError(f"{name}: expected a list with one dict per image, got {type(value).__name__}")
    if len(preds) != len(targets):
        raise ValueError(
            f"expected one target per prediction (one dict per image), got {len(preds)} and {len(targets)}"
        )
    det_parts = {key: [] for key in _DET_FIELDS}
    gt_parts = {key: [] for key in _GT_FIELDS}
    for index, (pred, target) in enumerate(zip(preds, targets, strict=True)):
        for role, record, parts, required in (
            ("preds", pred, det_parts, ("boxes", "scores", "labels")),
            ("targets", target, gt_parts, ("boxes", "labels")),
        ):
            name = f"{role}[{index}]"
            record = _require(record, required, name)
            boxes = _field(record["boxes"], f"{name}['boxes']", "boxes", 0)
            for key, values in parts.items():
                given = boxes if key == "boxes" else record.get(key)
                # Optional target fields default to 0: not a crowd, not difficult, area from the box.
                given = torch.zeros(len(boxes)) if given is None else _field(given, f"{name}['{key}']", key, len(boxes))
                values.append(given)
    dets = _concatenate(det_parts, _DET_FIELDS, "preds")
    nan = torch.isnan(dets["scores"])
    if nan.any():
        index = int(dets["image"][nan][0])
        raise ValueError(f"preds[{index}]['scores']: expected no NaN, got NaN score(s) in image {index}")
    gts = _concatenate(gt_parts, _GT_FIELDS, "targets")
    # torchmetrics' rule: a given area counts where it is positive, the box area elsewhere.
    gts["area"] = torch.where(gts["area"] > 0, gts["area"], box_area(gts["boxes"]))
    return _Images(dets, gts, len(preds))


def _merge(batches: list[_Images]) -> _Images:
    """One set of images from several, image indices shifted to follow on."""
    if not batches:
        return _check_images([], [])
    shift, dets, gts = 0, [], []
    for batch in batches:
        dets.append({**batch.dets, "image": batch.dets["image"] + shift})
        gts.append({**batch.gts, "image": batch.gts["image"] + shift})
        shift += batch.num_images
    return _Images(
        {key: torch.cat([part[key] for part in dets]) for key in dets[0]},
        {key: torch.cat([part[key] for part in gts]) for key in gts[0]},
        shift,
    )


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


# ------------------------------------------------------------------------------------------------ shared helpers


def _stable_order(*keys: Tensor) -> Tensor:
    """Permutation sorting by ``keys[0]``, then ``keys[1]``, ... ascending, ties kept in input order."""
    order = torch.arange(len(keys[0]))
    for key in reversed(keys):
        order = order[torch.sort(key[order], stable=True).indices]
    return order


def _rank_in_group(sorted_groups: Tensor) -> Tensor:
    """Position of each row within its run of equal values in the sorted ``sorted_groups``."""
    return torch.arange(len(sorted_groups)) - torch.searchsorted(sorted_groups, sorted_groups)


def _groups(images: _Images, classes: Tensor) -> tuple[Tensor, Tensor, int]:
    """Group index (class, image) of every detection and ground truth, and the number of groups."""
    det_group = torch.searchsorted(classes, images.dets["labels"]) * images.num_images + images.dets["image"]
    gt_group = torch.searchsorted(classes, images.gts["labels"]) * images.num_images + images.gts["image"]
    return det_group, gt_group, len(classes) * images.num_images


def _same_group_pairs(det_group: Tensor, gt_group: Tensor, num_groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """Every (detection, ground truth) pair of the same group: detection and ground-truth indices, and the ground
    truth's slot in its group (its position among the group's ground truths in input order)."""
    per_group = torch.bincount(gt_group, minlength=num_groups)
    first = per_group.cumsum(0) - per_group
    count = per_group[det_group]
    det_index = torch.repeat_interleave(torch.arange(len(det_group)), count)
    slot = torch.arange(len(det_index)) - torch.repeat_interleave(count.cumsum(0) - count, count)
    return det_index, _stable_order(gt_group)[first[det_group[det_index]] + slot], slot


def _pair_overlaps(det_boxes: Tensor, gt_boxes: Tensor, crowd: Tensor) -> Tensor:
    """IoU of matching rows; against a crowd, the share of the detection's area inside it (pycocotools' rule)."""
    iou = paired_box_iou(det_boxes, gt_boxes, eps=0.0)
    if not crowd.any():
        return iou
    size = torch.min(det_boxes[:, 2:], gt_boxes[:, 2:]) - torch.max(det_boxes[:, :2], gt_boxes[:, :2])
    inside = size.clamp(min=0).prod(dim=-1)
    return torch.where(crowd, torch.where(inside > 0, inside / box_area(det_boxes), 0.0), iou)


def _mean_defined(values: Tensor, start_dim: int = 0) -> Tensor:
    """Mean of the entries > -1 over the dimensions from ``start_dim`` on; -1 where there are none."""
    values = values.flatten(start_dim)
    defined = values > -1
    count = defined.sum(-1)
    total = torch.where(defined, values, 0.0).sum(-1)
    return torch.where(count > 0, total / count.clamp(min=1), -1.0)


# ------------------------------------------------------------------------------------------------------------ COCO


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
    images: _Images, classes: Tensor, gt_ignore: Tensor, thresholds: Tensor, max_det: int
) -> tuple[Tensor, ...]:
    """Keep ``max_det`` detections per image and class and match them (``gt_ignore [M, A]``).

    Returns the kept detections' indices (grouped by class then image, best score first), their rank in the group,
    and ``found``, ``ignored`` ``[D, A, T]``.
    """
    dets, gts = images.dets, images.gts
    det_group, gt_group, num_groups = _groups(images, classes)
    order = _stable_order(det_group, -dets["scores"])
    rank = _rank_in_group(det_group[order])
    kept, rank = order[rank < max_det], rank[rank < max_det]
    groups, group_row, counts = torch.unique_consecutive(det_group[kept], return_inverse=True, return_counts=True)
    starts = counts.cumsum(0) - counts

    # Each kept detection's row of IoUs with its group's ground truths, -1 where there is none.
    det_index, gt_index, slot = _same_group_pairs(det_group[kept], gt_group, num_groups)
    width = int(slot.max()) + 1 if len(slot) else 0
    ious = torch.full((len(kept), width), -1.0, dtype=torch.float64)
    crowd = gts["iscrowd"][gt_index]
    ious[det_index, slot] = _pair_overlaps(dets["boxes"][kept[det_index]], gts["boxes"][gt_index], crowd)
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
    outside = _outside_ranges(box_area(dets["boxes"][kept]))
    return kept, rank, found, took_ignored | (~found & outside[:, :, None])


def _outside_ranges(area: Tensor) -> Tensor:
    """``[N, A]``: whether each area lies outside each of the area ranges."""
    return (area[:, None] < _AREA_RANGES[:, 0]) | (area[:, None] > _AREA_RANGES[:, 1])


def _coco_curves(
    images: _Images,
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
    order = _stable_order(label, -dets["scores"][kept])
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
        envelope = (true_pos / (false_pos + true_pos + _EPS)).flip(-1).cummax(-1).values.flip(-1)
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
        "map": _mean_defined(at_100),
        "map_50": _mean_defined(at_cap[:, iou_thresholds == 0.5]),  # -1 when 0.5 is not a threshold
        "map_75": _mean_defined(at_cap[:, iou_thresholds == 0.75]),
        "map_small": _mean_defined(precision[:, 1, last]),
        "map_medium": _mean_defined(precision[:, 2, last]),
        "map_large": _mean_defined(precision[:, 3, last]),
        **{f"mar_{cap}": _mean_defined(recall[:, 0, index]) for index, cap in enumerate(max_dets)},
        "mar_small": _mean_defined(recall[:, 1, last]),
        "mar_medium": _mean_defined(recall[:, 2, last]),
        "mar_large": _mean_defined(recall[:, 3, last]),
    }
    if class_metrics:
        result["map_per_class"] = _mean_defined(at_100, start_dim=1)
        result[f"mar_{max_dets[-1]}_per_class"] = _mean_defined(recall[:, 0, last], start_dim=1)
    else:
        result["map_per_class"] = torch.tensor(-1.0)
        result[f"mar_{max_dets[-1]}_per_class"] = torch.tensor(-1.0)
    result = {key: value.float() for key, value in result.items()}
    result["classes"] = classes.int()
    return result


def _coco_evaluate(
    images: _Images, iou_thresholds: Tensor, rec_thresholds: Tensor, max_dets: list[int], class_metrics: bool
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
) -> dict[str, Tensor]:
    """COCO box mAP / mAR of one set of images, as ``COCOeval`` and ``torchmetrics``' ``MeanAveragePrecision``.

    ``preds``: one dict per image with ``boxes [N, 4]`` (xyxy), ``scores [N]``, ``labels [N]``; ``targets``: one
    dict per image with ``boxes [M, 4]``, ``labels [M]`` and optionally ``iscrowd [M]`` and ``area [M]`` (used
    where positive). Defaults: IoU thresholds 0.50:0.05:0.95 and recall thresholds 0:0.01:1, both as pycocotools
    builds them (torchmetrics' defaults are the float32 roundings of these, which can move a value that sits exactly
    on a threshold), and 1, 10, 100 detections per image and class. Returns float32 scalars ``map, map_50, map_75,
    map_small, map_medium, map_large, mar_1, mar_10, mar_100, mar_small, mar_medium, mar_large``, then
    ``map_per_class`` and ``mar_100_per_class`` (``[K]`` with ``class_metrics``, else -1) and ``classes`` (int32,
    every label seen in either). A value with nothing to average (e.g. no small ground truth) is -1. As in
    COCOeval, ``map`` and ``map_per_class`` are read at a cap of 100 detections whatever the caps (-1 without 100),
    the other precision values and ``mar_small/medium/large`` at the largest cap.
    """
    settings = _coco_settings(iou_thresholds, rec_thresholds, max_detection_thresholds, class_metrics)
    return _coco_evaluate(_check_images(preds, targets), *settings)


class MeanAveragePrecision(Metric):
    """Accumulating form of :func:`mean_average_precision`: ``update(preds, targets)`` per batch, ``compute()``.

    Inputs are validated and copied to the CPU on ``update``; the evaluation runs over all of them on ``compute``.
    """

    def __init__(
        self,
        iou_thresholds: Sequence[float] | None = None,
        rec_thresholds: Sequence[float] | None = None,
        max_detection_thresholds: Sequence[int] | None = None,
        class_metrics: bool = False,
    ) -> None:
        self._settings = _coco_settings(iou_thresholds, rec_thresholds, max_detection_thresholds, class_metrics)
        super().__init__()

    def reset(self) -> None:
        self._batches: list[_Images] = []

    def update(self, preds: Sequence[Mapping[str, Tensor]], targets: Sequence[Mapping[str, Tensor]]) -> None:
        self._batches.append(_check_images(preds, targets))

    def compute(self) -> dict[str, Tensor]:
        return _coco_evaluate(_merge(self._batches), *self._settings)


# ------------------------------------------------------------------------------------------------------------- VOC


def voc_average_precision(recall: Tensor, precision: Tensor, use_07_metric: bool = False) -> Tensor:
    """PASCAL VOC average precision of one precision/recall curve (points in ranking order, recall non-decreasing).

    All-point (VOC2010+): area under the precision envelope ``max {p_j : r_j >= r}``. ``use_07_metric``: the mean
    of that envelope at recall 0, 0.1, ..., 1 (each threshold the double nearest i/10; the Python devkit's
    ``np.arange(0, 1.1, 0.1)`` puts 0.3, 0.6 and 0.7 a hair higher). An empty curve has AP 0.
    """
    for name, values in (("recall", recall), ("precision", precision)):
        if not isinstance(values, Tensor):
            raise TypeError(f"{name}: expected a 1-D torch.Tensor, got {type(values).__name__}")
        if values.dim() != 1:
            raise ValueError(f"{name}: expected a 1-D tensor, got shape {list(values.shape)}")
    if len(recall) != len(precision):
        raise ValueError(f"expected recall and precision of the same length, got {len(recall)} and {len(precision)}")
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


def _voc_outcomes(images: _Images, classes: Tensor, threshold: float, rank: Tensor) -> tuple[Tensor, Tensor]:
    """True positives and ignored (difficult) detections under the devkit rule; ``rank``: position in the ranking."""
    count = len(images.gts["labels"])
    det_index, gt_index, _ = _same_group_pairs(*_groups(images, classes))
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
    images = _check_images(preds, targets)
    dets, gts = images.dets, images.gts
    classes = torch.unique(torch.cat([dets["labels"], gts["labels"]]))
    label = torch.searchsorted(classes, dets["labels"])
    order = _stable_order(label, -dets["scores"])  # ties in image order, as a stable sort of the devkit's list
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
        recall, precision = tp / positives[k], tp / (tp + fp).clamp(min=_EPS)
        average_precision[k] = voc_average_precision(recall, precision, use_07_metric)
    return {
        "map": _mean_defined(average_precision).float(),
        "map_per_class": average_precision.float(),
        "classes": classes.int(),
    }
