"""Inputs of the detection metrics: torchvision-style per-image dicts, checked, concatenated and grouped.

``preds`` hold one dict per image with ``boxes [N, 4]`` (xyxy), ``scores [N]`` and ``labels [N]``; ``targets`` one
dict per image with ``boxes [M, 4]``, ``labels [M]`` and optionally ``iscrowd [M]``, ``difficult [M]`` and
``area [M]``. Each field's type and shape is checked per image, its values over all images at once, and a message
names the image and field. A missing flag is 0 (not a crowd, not difficult); a given area counts where it is
positive, the box area elsewhere (torchmetrics' rule); a NaN score is an error. The images are concatenated into one
table of detections and one of ground truths, each row with its image index, so that COCO (:mod:`zoo.metrics.coco`)
and VOC (:mod:`zoo.metrics.voc`) match every (class, image) group at once with the helpers at the end.

With ``with_masks`` (instance segmentation) both sides also carry ``masks``, bool or 0/1 uint8 ``[N, H, W]``, one per
entry and of one size per image, and ``boxes`` may be left out (as torchmetrics' ``iou_type="segm"``). The masks are
not kept: each image is reduced on the spot to what mask IoU needs, every mask's pixel count and the ``[N, M]``
counts of the pixels each detection shares with each ground truth, exactly (0/1 float64 matrices multiplied over the
pixels some ground truth covers); the mask's pixel count then replaces the box area wherever an area is needed.
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
    """A set of images with their boxes concatenated: ``dets`` holds ``boxes, scores, labels, area, image``, ``gts``
    ``boxes, labels, iscrowd, difficult, area, image`` (float64 / int64 / bool CPU tensors; ``image``: row's image;
    ``area``: the box's, or with masks the mask's pixel count, a target's given area first).

    With masks, ``gts`` also holds ``mask_area`` (the pixel count, whatever area was given) and ``intersections``
    the pixel counts each detection shares with each ground truth of its image: the row-major ``[N_i, M_i]`` block of
    every image in turn, flattened (``None`` without masks)."""

    dets: dict[str, Tensor]
    gts: dict[str, Tensor]
    num_images: int
    intersections: Tensor | None = None


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


def _masks(value: object, name: str, count: int | None) -> Tensor:
    """One image's masks as a bool tensor ``[N, H, W]`` on their device; ``count`` (when known) is N."""
    expected = f"[{'N' if count is None else count}, H, W]"
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{name}: expected a bool or uint8 torch.Tensor of shape {expected}, got {type(value).__name__}"
        )
    if value.dtype not in (torch.bool, torch.uint8):
        raise TypeError(f"{name}: expected a bool or uint8 (0/1) tensor, got {value.dtype}")
    if value.dim() != 3:
        raise ValueError(f"{name}: expected shape {expected} (one H×W mask per entry), got {list(value.shape)}")
    if count is not None and len(value) != count:
        raise ValueError(f"{name}: expected {count} masks (one per box), got {len(value)}")
    if value.dtype == torch.uint8 and (value > 1).any():
        raise ValueError(f"{name}: expected 0/1 values in a uint8 mask, got values up to {int(value.max())}")
    return value.detach().bool()


def _mask_counts(index: int, det_masks: Tensor, gt_masks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Image ``index``'s pixel counts of the detections' and the ground truths' masks, and of the pixels each pair
    shares (``[N, M]`` row-major, flattened).

    Exact: only the pixels some ground truth covers can be shared, and there the 0/1 masks, as float64 (which autocast
    leaves alone and which counts exactly up to 2**53), are multiplied in chunks of bounded memory."""
    if det_masks.shape[1:] != gt_masks.shape[1:]:
        (det_height, det_width), (gt_height, gt_width) = det_masks.shape[1:], gt_masks.shape[1:]
        raise ValueError(
            f"preds[{index}]['masks'] and targets[{index}]['masks']: expected masks of one size per image, "
            f"got {det_height}×{det_width} and {gt_height}×{gt_width} (H×W)"
        )
    dets, gts = det_masks.flatten(1), gt_masks.flatten(1)
    covered = gts.any(0)
    covered_gts = gts[:, covered].double()
    rows = max(1, _CHUNK_ELEMENTS // max(1, covered_gts.shape[1]))
    shared = [dets[start : start + rows, covered].double() @ covered_gts.T for start in range(0, len(dets), rows)]
    shared = torch.cat(shared) if shared else covered_gts.new_zeros(0, len(gts))
    return dets.sum(1).double().cpu(), gts.sum(1).double().cpu(), shared.flatten().cpu()


_CHUNK_ELEMENTS = 2**22  # detection-mask pixels multiplied at once: 32 MB of float64


def _add_record(
    record: object, name: str, parts: dict[str, list[Tensor]], required: tuple[str, ...], with_masks: bool
) -> Tensor | None:
    """Check one image's dict of one side and append its fields to ``parts``; return its masks (``with_masks``)."""
    record = _require(record, required, name)
    boxes = _field(record["boxes"], f"{name}['boxes']", "boxes", 0) if "boxes" in record else None
    masks = None
    if with_masks:
        masks = _masks(record["masks"], f"{name}['masks']", None if boxes is None else len(boxes))
        boxes = torch.zeros(len(masks), 4) if boxes is None else boxes  # unused then: the masks are the shapes
    for key, values in parts.items():
        given = boxes if key == "boxes" else record.get(key)
        # Optional target fields default to 0: not a crowd, not difficult, area from the box (mask).
        given = torch.zeros(len(boxes)) if given is None else _field(given, f"{name}['{key}']", key, len(boxes))
        values.append(given)
    return masks


def check_images(preds: object, targets: object, with_masks: bool = False) -> Images:
    """Validate torchvision-style per-image dicts and concatenate them; ``with_masks``: with their ``masks``."""
    for name, value in (("preds", preds), ("targets", targets)):
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
            raise TypeError(f"{name}: expected a list with one dict per image, got {type(value).__name__}")
    if len(preds) != len(targets):
        raise ValueError(
            f"expected one target per prediction (one dict per image), got {len(preds)} and {len(targets)}"
        )
    shape = "masks" if with_masks else "boxes"
    det_parts = {key: [] for key in _DET_FIELDS}
    gt_parts = {key: [] for key in _GT_FIELDS}
    mask_counts = []
    for index, (pred, target) in enumerate(zip(preds, targets, strict=True)):
        det_masks = _add_record(pred, f"preds[{index}]", det_parts, (shape, "scores", "labels"), with_masks)
        gt_masks = _add_record(target, f"targets[{index}]", gt_parts, (shape, "labels"), with_masks)
        if with_masks:
            mask_counts.append(_mask_counts(index, det_masks, gt_masks))
    dets = _concatenate(det_parts, _DET_FIELDS, "preds")
    nan = torch.isnan(dets["scores"])
    if nan.any():
        index = int(dets["image"][nan][0])
        raise ValueError(f"preds[{index}]['scores']: expected no NaN, got NaN score(s) in image {index}")
    gts = _concatenate(gt_parts, _GT_FIELDS, "targets")
    intersections = None
    if with_masks:
        empty = torch.zeros(0, dtype=torch.float64)
        dets["area"], gts["mask_area"], intersections = (
            torch.cat([empty, *(counts[column] for counts in mask_counts)]) for column in range(3)
        )
    else:
        dets["area"] = box_area(dets["boxes"])
    # torchmetrics' rule: a given area counts where it is positive, the box's (the mask's) elsewhere.
    shape_area = gts["mask_area"] if with_masks else box_area(gts["boxes"])
    gts["area"] = torch.where(gts["area"] > 0, gts["area"], shape_area)
    return Images(dets, gts, len(preds), intersections)


def merge_images(batches: list[Images], with_masks: bool = False) -> Images:
    """One set of images from several (all with masks or all without), image indices shifted to follow on."""
    if not batches:
        return check_images([], [], with_masks)
    shift, dets, gts = 0, [], []
    for batch in batches:
        dets.append({**batch.dets, "image": batch.dets["image"] + shift})
        gts.append({**batch.gts, "image": batch.gts["image"] + shift})
        shift += batch.num_images
    with_masks = batches[0].intersections is not None
    return Images(
        {key: torch.cat([part[key] for part in dets]) for key in dets[0]},
        {key: torch.cat([part[key] for part in gts]) for key in gts[0]},
        shift,
        torch.cat([batch.intersections for batch in batches]) if with_masks else None,
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
