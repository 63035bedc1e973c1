"""Inputs of the detection metrics: torchvision-style per-image dicts, checked, concatenated and grouped.

``preds`` hold one dict per image with ``boxes [N, 4]`` (xyxy), ``scores [N]`` and ``labels [N]``; ``targets`` one
dict per image with ``boxes [M, 4]``, ``labels [M]`` and optionally ``iscrowd [M]``, ``difficult [M]`` and
``area [M]``. Each field's type and shape is checked per image, its values over all images at once, and a message
names the image and field. A missing flag is 0 (not a crowd, not difficult); a given area counts where it is
positive, the box area elsewhere (torchmetrics' rule); a NaN score is an error. The images are concatenated into one
table of detections and one of ground truths, each row with its image index, so that COCO (:mod:`zoo.metrics.coco`)
and VOC (:mod:`zoo.metrics.voc`) match every (class, image) group at once with the helpers at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from zoo.ops.boxes import box_area, check_boxes

__all__ = [
    "EPS",
    "Images",
    "check_images",
    "class_image_groups",
    "mean_defined",
    "merge_images",
    "same_group_pairs",
    "stable_order",
]

EPS = torch.finfo(torch.float64).eps  # np.spacing(1), pycocotools' guard against 0 / 0


# ---------------------------------------------------------------------------------------------------------- inputs


class Images(NamedTuple):
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


def check_images(preds: object, targets: object) -> Images:
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
    return Images(dets, gts, len(preds))


def merge_images(batches: list[Images]) -> Images:
    """One set of images from several, image indices shifted to follow on."""
    if not batches:
        return check_images([], [])
    shift, dets, gts = 0, [], []
    for batch in batches:
        dets.append({**batch.dets, "image": batch.dets["image"] + shift})
        gts.append({**batch.gts, "image": batch.gts["image"] + shift})
        shift += batch.num_images
    return Images(
        {key: torch.cat([part[key] for part in dets]) for key in dets[0]},
        {key: torch.cat([part[key] for part in gts]) for key in gts[0]},
        shift,
    )


# ------------------------------------------------------------------- grouping by (class, image), shared by COCO and VOC


def stable_order(*keys: Tensor) -> Tensor:
    """Permutation sorting by ``keys[0]``, then ``keys[1]``, ... ascending, ties kept in input order."""
    order = torch.arange(len(keys[0]))
    for key in reversed(keys):
        order = order[torch.sort(key[order], stable=True).indices]
    return order


def class_image_groups(images: Images, classes: Tensor) -> tuple[Tensor, Tensor, int]:
    """Group index (class, image) of every detection and ground truth, and the number of groups."""
    det_group = torch.searchsorted(classes, images.dets["labels"]) * images.num_images + images.dets["image"]
    gt_group = torch.searchsorted(classes, images.gts["labels"]) * images.num_images + images.gts["image"]
    return det_group, gt_group, len(classes) * images.num_images


def same_group_pairs(det_group: Tensor, gt_group: Tensor, num_groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """Every (detection, ground truth) pair of the same group: detection and ground-truth indices, and the ground
    truth's slot in its group (its position among the group's ground truths in input order)."""
    per_group = torch.bincount(gt_group, minlength=num_groups)
    first = per_group.cumsum(0) - per_group
    count = per_group[det_group]
    det_index = torch.repeat_interleave(torch.arange(len(det_group)), count)
    slot = torch.arange(len(det_index)) - torch.repeat_interleave(count.cumsum(0) - count, count)
    return det_index, stable_order(gt_group)[first[det_group[det_index]] + slot], slot


def mean_defined(values: Tensor, start_dim: int = 0) -> Tensor:
    """Mean of the entries > -1 over the dimensions from ``start_dim`` on; -1 where there are none."""
    values = values.flatten(start_dim)
    defined = values > -1
    count = defined.sum(-1)
    total = torch.where(defined, values, 0.0).sum(-1)
    return torch.where(count > 0, total / count.clamp(min=1), -1.0)
