"""Box formats, areas and the IoU family, drop-in for ``torchvision.ops``' box functions.

Boxes are ``(x1, y1, x2, y2)`` ("xyxy") rows in a ``[N, 4]`` tensor, with ``x2 >= x1`` and ``y2 >= y1``, and
areas carry no "+1" (torchvision's convention). Every pairwise function returns an ``[N, M]`` matrix.

    IoU(A, B)  = |A ∩ B| / |A ∪ B|
    GIoU(A, B) = IoU - |C \\ (A ∪ B)| / |C|                  C: the smallest box enclosing A and B
    DIoU(A, B) = IoU - ρ²(centres) / c²                      c: the diagonal of C       (Zheng et al., 2020)
    CIoU(A, B) = DIoU - α v,  v = 4/π² (atan(w_B/h_B) - atan(w_A/h_A))²,  α = v / (1 - IoU + v)

Where torchvision divides zero by zero (two zero-area boxes that do not overlap, or coincide) it returns NaN;
here the IoU of two empty boxes is 0 and the penalty terms are 0, so degenerate boxes never poison a loss.
Inputs of integer dtype are computed in float32, as torchvision does.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "BOX_FORMATS",
    "check_boxes",
    "box_convert",
    "box_area",
    "box_iou",
    "generalized_box_iou",
    "distance_box_iou",
    "complete_box_iou",
    "clip_boxes_to_image",
    "remove_small_boxes",
]

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def check_boxes(boxes: Tensor, name: str = "boxes", *, check_order: bool = True) -> Tensor:
    """Validate an ``[N, 4]`` xyxy box tensor; return it as floating point.

    Raises ``TypeError`` for a non-tensor, ``ValueError`` for another shape, for NaN coordinates, or (with
    ``check_order``) for a box with ``x2 < x1`` or ``y2 < y1`` — a negative size almost always means the boxes are
    in another format.
    """
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape [N, 4], got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name}: expected shape [N, 4], got {list(boxes.shape)}")
    if not boxes.is_floating_point():
        boxes = boxes.float()
    if check_order and boxes.numel():
        # One comparison catches both: NaN >= x is False.
        bad = ~(boxes[:, 2:] >= boxes[:, :2]).all(dim=1)
        if bad.any():
            index = int(bad.nonzero()[0])
            raise ValueError(
                f"{name}: expected xyxy boxes with x2 >= x1 and y2 >= y1 and no NaN; "
                f"box {index} is {boxes[index].tolist()}"
            )
    return boxes


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``[N, 4]`` boxes between ``"xyxy"``, ``"xywh"`` (corner + size) and ``"cxcywh"`` (centre + size)."""
    for fmt, role in ((in_fmt, "in_fmt"), (out_fmt, "out_fmt")):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"{role}: expected one of {BOX_FORMATS}, got {fmt!r}")
    boxes = check_boxes(boxes, check_order=False)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        xyxy = (a, b, a + c, b + d)
    elif in_fmt == "cxcywh":
        xyxy = (a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d)
    else:
        xyxy = (a, b, c, d)
    x1, y1, x2, y2 = xyxy
    if out_fmt == "xywh":
        out = (x1, y1, x2 - x1, y2 - y1)
    elif out_fmt == "cxcywh":
        out = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    else:
        out = xyxy
    return torch.stack(out, dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """Areas ``(x2 - x1) * (y2 - y1)`` of ``[N, 4]`` xyxy boxes."""
    boxes = check_boxes(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator``, 0 where the denominator is 0 (empty boxes)."""
    positive = denominator > 0
    return torch.where(positive, numerator / torch.where(positive, denominator, 1.0), 0.0)


def _pairwise(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    return check_boxes(boxes1, "boxes1"), check_boxes(boxes2, "boxes2")


def _inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    return inter, area1[:, None] + area2[None, :] - inter


def _enclosing(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Width and height ``[N, M, 2]`` of the smallest box enclosing each pair."""
    top_left = torch.min(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:])
    return bottom_right - top_left


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU ``[N, M]`` of two sets of xyxy boxes."""
    boxes1, boxes2 = _pairwise(boxes1, boxes2)
    inter, union = _inter_union(boxes1, boxes2)
    return _safe_divide(inter, union)


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise generalised IoU ``[N, M]``, in [-1, 1] (Rezatofighi et al., 2019)."""
    boxes1, boxes2 = _pairwise(boxes1, boxes2)
    inter, union = _inter_union(boxes1, boxes2)
    iou = _safe_divide(inter, union)
    hull = _enclosing(boxes1, boxes2).prod(dim=2)
    return iou - _safe_divide(hull - union, hull)


def _diou_terms(boxes1: Tensor, boxes2: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """IoU and the DIoU centre-distance penalty ``ρ² / (c² + eps)``."""
    inter, union = _inter_union(boxes1, boxes2)
    iou = _safe_divide(inter, union)
    diagonal_sq = _enclosing(boxes1, boxes2).pow(2).sum(dim=2) + eps
    centres1 = (boxes1[:, :2] + boxes1[:, 2:]) / 2
    centres2 = (boxes2[:, :2] + boxes2[:, 2:]) / 2
    distance_sq = (centres1[:, None] - centres2[None, :]).pow(2).sum(dim=2)
    return iou, _safe_divide(distance_sq, diagonal_sq)


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise distance IoU ``[N, M]``: IoU minus squared centre distance over squared enclosing diagonal."""
    boxes1, boxes2 = _pairwise(boxes1, boxes2)
    iou, penalty = _diou_terms(boxes1, boxes2, eps)
    return iou - penalty


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise complete IoU ``[N, M]``: DIoU minus an aspect-ratio consistency term."""
    boxes1, boxes2 = _pairwise(boxes1, boxes2)
    iou, penalty = _diou_terms(boxes1, boxes2, eps)
    size1 = boxes1[:, 2:] - boxes1[:, :2]
    size2 = boxes2[:, 2:] - boxes2[:, :2]
    # atan2(w, h) equals atan(w / h) for h > 0 and stays finite for zero-height boxes.
    angle1 = torch.atan2(size1[:, 0], size1[:, 1])
    angle2 = torch.atan2(size2[:, 0], size2[:, 1])
    v = (4 / math.pi**2) * (angle2[None, :] - angle1[:, None]).pow(2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return iou - penalty - alpha * v


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip ``[..., 4]`` xyxy boxes to an image of ``size = (height, width)``."""
    if not isinstance(boxes, Tensor) or boxes.shape[-1:] != (4,):
        shape = list(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"boxes: expected a tensor of shape [..., 4], got {shape}")
    if len(size) != 2:
        raise ValueError(f"size: expected (height, width), got {size!r}")
    height, width = size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x, y), dim=-1).reshape(boxes.shape)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes whose width and height are both at least ``min_size``."""
    boxes = check_boxes(boxes, check_order=False)
    size = boxes[:, 2:] - boxes[:, :2]
    return ((size[:, 0] >= min_size) & (size[:, 1] >= min_size)).nonzero().flatten()
