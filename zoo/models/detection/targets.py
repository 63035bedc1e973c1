"""The one check of detection targets, shared by every detector (and the data pipeline).

A target is torchvision's ``{"boxes": FloatTensor[K, 4], "labels": Int64Tensor[K]}`` per image, K >= 0, boxes
xyxy in input pixels with x1 <= x2 and y1 <= y2 (``zoo.ops.boxes.check_boxes``) and finite; labels integers
in [0, num_classes). Detectors that encode box sizes as log(w), log(h) (Faster R-CNN) also need w, h > 0,
as torchvision checks. A detector with a background class (Faster R-CNN's label 0, torchvision's convention:
objects are 1..num_classes-1) refuses that label in a target, which would otherwise be trained as background;
one that assigns each box to the grid cell of its centre (YOLOv3) refuses a box with no part inside its image.
A target may carry instance ``masks``, ``uint8`` or ``bool [K, H, W]``: one per box, of the image's size
(Mask R-CNN needs them, and says so where they are missing). Every error names the image, so that a bad
sample can be found in its batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from zoo.ops.boxes import check_boxes

__all__ = ["check_detection_target", "check_detection_targets"]

MOVED = ("boxes", "labels", "masks")  # the keys that the models read, moved to their device


def check_detection_target(
    target: object,
    index: int,
    num_classes: int | None = None,
    *,
    positive_size: bool = False,
    background_label: int | None = None,
    image_size: tuple[int, int] | None = None,
    mask_size: tuple[int, int] | None = None,
) -> dict[str, Tensor]:
    """``target`` with floating-point ``boxes`` and int64 ``labels``; a ValueError naming image ``index`` if
    it is not a valid target (module docstring). ``positive_size`` also rejects boxes of zero width or height,
    ``background_label`` the label of the background class, and ``image_size`` ``(H, W)`` a box lying entirely
    outside the image (one touching it only along its border counts as outside). ``masks``, where present,
    must be one per box and, where ``mask_size`` ``(H, W)`` is given, of that size."""
    if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
        raise ValueError(f"target of image {index}: expected a dict with 'boxes' and 'labels', got {target!r:.80}")
    try:
        boxes = check_boxes(target["boxes"], "boxes")
    except (TypeError, ValueError) as error:
        raise ValueError(f"target of image {index}: {error}") from None
    if not boxes.isfinite().all():
        raise ValueError(f"target of image {index}: boxes must have finite coordinates")
    if positive_size:
        empty = (boxes[:, 2:] <= boxes[:, :2]).any(dim=1)
        if empty.any():
            box = boxes[int(empty.nonzero()[0])].tolist()
            raise ValueError(f"target of image {index}: boxes must have positive width and height, got {box}")
    if image_size is not None:
        _check_inside(boxes, index, image_size)
    labels = target["labels"]
    if not isinstance(labels, Tensor) or labels.shape != boxes.shape[:1]:
        shape = list(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"target of image {index}: labels must have shape [{len(boxes)}], got {shape}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"target of image {index}: labels must be integers, got dtype {labels.dtype}")
    if num_classes is not None and labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"target of image {index}: labels must lie in 0..{num_classes - 1}, got {labels.unique().tolist()}"
        )
    if background_label is not None and (labels == background_label).any():
        zero_first = background_label == 0 and num_classes is not None
        allowed = f"1..{num_classes - 1}" if zero_first else f"any label but {background_label}"
        raise ValueError(
            f"target of image {index}: label {background_label} is the background class, which no object may have "
            f"(object labels are {allowed}), got {labels.unique().tolist()}"
        )
    if "masks" in target:
        _check_masks(target["masks"], index, len(boxes), mask_size)
    return {**target, "boxes": boxes, "labels": labels.to(torch.int64)}


def _check_masks(masks: object, index: int, num_boxes: int, mask_size: tuple[int, int] | None) -> None:
    if not isinstance(masks, Tensor) or masks.dim() != 3:
        shape = list(masks.shape) if isinstance(masks, Tensor) else type(masks).__name__
        raise ValueError(f"target of image {index}: masks must have shape [{num_boxes}, H, W], got {shape}")
    if masks.dtype not in (torch.uint8, torch.bool):
        raise ValueError(f"target of image {index}: masks must be uint8 or bool (0/1 per pixel), got {masks.dtype}")
    if len(masks) != num_boxes:
        raise ValueError(f"target of image {index}: expected one mask per box ({num_boxes}), got {len(masks)} masks")
    if mask_size is not None and tuple(masks.shape[1:]) != tuple(mask_size):
        height, width = mask_size
        raise ValueError(
            f"target of image {index}: masks must have the image's size {height}×{width} (H×W), "
            f"got {masks.shape[1]}×{masks.shape[2]}"
        )


def _check_inside(boxes: Tensor, index: int, image_size: tuple[int, int]) -> None:
    height, width = image_size
    outside = (boxes[:, 0] >= width) | (boxes[:, 1] >= height) | (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0)
    if outside.any():
        box = int(outside.nonzero()[0])
        raise ValueError(
            f"target of image {index}: box {box} {boxes[box].tolist()} lies entirely outside the image of "
            f"{height}×{width} (H×W) pixels; boxes are xyxy in input pixels"
        )


def check_detection_targets(
    targets: object,
    num_images: int,
    num_classes: int | None,
    *,
    device: torch.device,
    model_name: str,
    positive_size: bool = False,
    background_label: int | None = None,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    mask_sizes: Sequence[tuple[int, int]] | None = None,
) -> list[dict[str, Tensor]]:
    """A training batch's targets, one per image, each checked by :func:`check_detection_target` (with
    ``image_sizes[i]`` and ``mask_sizes[i]`` for image i, where given), with ``boxes``, ``labels`` and any
    ``masks`` moved to ``device`` (other keys are kept as they are)."""
    if targets is None:
        raise ValueError(
            f"targets: {model_name} in training mode needs targets, one {{'boxes', 'labels'}} dict per image; got None"
        )
    if not isinstance(targets, Sequence) or isinstance(targets, (str, bytes)) or len(targets) != num_images:
        got = f"{len(targets)} targets" if isinstance(targets, (list, tuple)) else type(targets).__name__
        raise ValueError(f"targets: expected a list of {num_images} dicts (one per image), got {got}")
    checked = []
    for index, target in enumerate(targets):  # one vectorised check per image
        target = check_detection_target(
            target,
            index,
            num_classes,
            positive_size=positive_size,
            background_label=background_label,
            image_size=None if image_sizes is None else image_sizes[index],
            mask_size=None if mask_sizes is None else mask_sizes[index],
        )
        checked.append({key: value.to(device) if key in MOVED else value for key, value in target.items()})
    return checked
