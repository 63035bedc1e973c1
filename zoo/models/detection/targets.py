"""The one check of detection targets, shared by every detector (and the data pipeline).

A target is torchvision's ``{"boxes": FloatTensor[K, 4], "labels": Int64Tensor[K]}`` per image, K >= 0, boxes
xyxy in input pixels with x1 <= x2 and y1 <= y2 (``zoo.ops.boxes.check_boxes``) and finite; labels integers
in [0, num_classes). Detectors that encode box sizes as log(w), log(h) (Faster R-CNN) also need w, h > 0,
as torchvision checks. Every error names the image, so that a bad sample can be found in its batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from zoo.ops.boxes import check_boxes

__all__ = ["check_detection_target", "check_detection_targets"]


def check_detection_target(
    target: object, index: int, num_classes: int | None = None, *, positive_size: bool = False
) -> dict[str, Tensor]:
    """``target`` with floating-point ``boxes`` and int64 ``labels``; a ValueError naming image ``index`` if
    it is not a valid target (module docstring). ``positive_size`` also rejects boxes of zero width or height."""
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
    return {**target, "boxes": boxes, "labels": labels.to(torch.int64)}


def check_detection_targets(
    targets: object,
    num_images: int,
    num_classes: int | None,
    *,
    device: torch.device,
    model_name: str,
    positive_size: bool = False,
) -> list[dict[str, Tensor]]:
    """A training batch's targets, one per image, each checked by :func:`check_detection_target`, with
    ``boxes`` and ``labels`` moved to ``device`` (other keys are kept as they are)."""
    if targets is None:
        raise ValueError(
            f"targets: {model_name} in training mode needs targets, one {{'boxes', 'labels'}} dict per image; got None"
        )
    if not isinstance(targets, Sequence) or isinstance(targets, (str, bytes)) or len(targets) != num_images:
        got = f"{len(targets)} targets" if isinstance(targets, (list, tuple)) else type(targets).__name__
        raise ValueError(f"targets: expected a list of {num_images} dicts (one per image), got {got}")
    checked = []
    for index, target in enumerate(targets):  # one vectorised check per image
        target = check_detection_target(target, index, num_classes, positive_size=positive_size)
        checked.append({**target, "boxes": target["boxes"].to(device), "labels": target["labels"].to(device)})
    return checked
