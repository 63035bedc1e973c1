"""Box formats, areas and the IoU family, drop-in for ``torchvision.ops``' box functions.

Boxes are ``(x1, y1, x2, y2)`` ("xyxy") rows in a ``[N, 4]`` tensor, with ``x2 >= x1`` and ``y2 >= y1``, and
areas carry no "+1" (torchvision's convention). Every pairwise function returns an ``[N, M]`` matrix;
``paired_box_iou`` compares matching rows instead (``[N]``), for the box losses.

    IoU(A, B)  = |A ∩ B| / |A ∪ B|
    GIoU(A, B) = IoU - |C \\ (A ∪ B)| / |C|                  C: the smallest box enclosing A and B
    DIoU(A, B) = IoU - ρ²(centres) / c²                      c: the diagonal of C       (Zheng et al., 2020)
    CIoU(A, B) = DIoU - α v,  v = 4/π² (atan(w_B/h_B) - atan(w_A/h_A))²,  α = v / (1 - IoU + v)

Where torchvision divides zero by zero (two zero-area boxes that do not overlap, or coincide) it returns NaN;
here the IoU of two empty boxes is 0 and the penalty terms are 0, so degenerate boxes never poison a loss.
Integer and half-precision inputs are computed in float32, as torchvision does.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from zoo.ops._graph import check_all, check_supported_dtype

__all__ = [
    "BOX_FORMATS",
    "IOU_KINDS",
    "check_boxes",
    "box_convert",
    "box_area",
    "box_iou",
    "generalized_box_iou",
    "distance_box_iou",
    "complete_box_iou",
    "paired_box_iou",
    "clip_boxes_to_image",
    "remove_small_boxes",
]

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
IOU_KINDS = ("iou", "giou", "diou", "ciou")


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
    check_supported_dtype(boxes, name)
    if not boxes.is_floating_point():
        boxes = boxes.float()
    if check_order:
        # One comparison catches both: NaN >= x is False.
        ok = (boxes[:, 2:] >= boxes[:, :2]).all(dim=1)

        def message() -> str:
            index = int((~ok).nonzero()[0])
            return (
                f"{name}: expected xyxy boxes with x2 >= x1 and y2 >= y1 and no NaN; "
                f"box {index} is {boxes[index].tolist()}"
            )

        check_all(ok, message, f"{name}: expected xyxy boxes with x2 >= x1 and y2 >= y1 and no NaN")
    return boxes


def _check_rows(ok: Tensor, boxes: Tensor, name: str, expected: str) -> None:
    """Every row of ``ok [N, k]`` true, or a ValueError naming the first box that is not."""
    ok = ok.all(dim=1)

    def message() -> str:
        index = int((~ok).nonzero()[0])
        return f"{name}: expected {expected}; box {index} is {boxes[index].tolist()}"

    check_all(ok, message, f"{name}: expected {expected}")


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert ``[N, 4]`` boxes between ``"xyxy"``, ``"xywh"`` (corner + size) and ``"cxcywh"`` (centre + size)."""
    for fmt, role in ((in_fmt, "in_fmt"), (out_fmt, "out_fmt")):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"{role}: expected one of {BOX_FORMATS}, got {fmt!r}")
    boxes = check_boxes(boxes, check_order=False)
    if in_fmt != "xyxy":
        _check_rows(boxes[:, 2:] >= 0, boxes, "boxes", f"{in_fmt} boxes with width >= 0 and height >= 0")
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


def _upcast(boxes: Tensor) -> Tensor:
    """Areas in float32 at least: in float16 a 300 x 300 box's area already overflows (torchvision upcasts too)."""
    return boxes if boxes.dtype in (torch.float32, torch.float64) else boxes.float()


def box_area(boxes: Tensor) -> Tensor:
    """Areas ``(x2 - x1) * (y2 - y1)`` of ``[N, 4]`` xyxy boxes."""
    x1, y1, x2, y2 = _upcast(check_boxes(boxes)).unbind(dim=1)
    return (x2 - x1) * (y2 - y1)


def _safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator``, 0 where the denominator is 0 (empty boxes)."""
    positive = denominator > 0
    return torch.where(positive, numerator / torch.where(positive, denominator, 1.0), 0.0)


def _corners(boxes: Tensor) -> tuple[Tensor, ...]:
    """``x1, y1, x2, y2`` of ``[..., 4]`` boxes as four contiguous tensors.

    Broadcasting ``[N, 1, 2]`` against ``[1, M, 2]`` (an interleaved last dimension) runs about 100 times slower
    on CPU than broadcasting ``[N, 1]`` against ``[1, M]``.
    """
    return boxes.movedim(-1, 0).contiguous().unbind(0)


def _inter_union(corners1: tuple[Tensor, ...], corners2: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    """Intersection and union areas of boxes given as broadcastable ``_corners``.

    Corners of ``[N, 1, 4]`` and ``[1, M, 4]`` give every pair, of two ``[N, 4]`` matching rows. The operations
    are those of torchvision's kernels, in the same order, so ``nms`` can reproduce its decisions bit for bit.
    """
    x1, y1, x2, y2 = corners1
    u1, v1, u2, v2 = corners2
    width = (torch.min(x2, u2) - torch.max(x1, u1)).clamp(min=0)
    height = (torch.min(y2, v2) - torch.max(y1, v1)).clamp(min=0)
    inter = width * height
    return inter, (x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter


def _iou_family(boxes1: Tensor, boxes2: Tensor, kind: str, eps: float, area_eps: float) -> Tensor:
    """IoU, GIoU, DIoU or CIoU of broadcastable ``[..., 4]`` boxes.

    ``eps`` goes where torchvision puts it in both its pairwise functions and its losses: the squared enclosing
    diagonal and CIoU's α. ``area_eps`` is added to the union and enclosing areas, which only the losses do.
    """
    corners1, corners2 = _corners(boxes1), _corners(boxes2)
    inter, union = _inter_union(corners1, corners2)
    # Adding a zero eps would cost a pass over the [N, M] matrix for nothing.
    iou = _safe_divide(inter, union + area_eps if area_eps else union)
    if kind == "iou":
        return iou
    x1, y1, x2, y2 = corners1
    u1, v1, u2, v2 = corners2
    # Width and height of the smallest box enclosing each pair.
    hull_width = torch.max(x2, u2) - torch.min(x1, u1)
    hull_height = torch.max(y2, v2) - torch.min(y1, v1)
    if kind == "giou":
        hull = hull_width * hull_height
        return iou - _safe_divide(hull - union, hull + area_eps if area_eps else hull)
    distance_sq = ((x1 + x2) / 2 - (u1 + u2) / 2).pow(2) + ((y1 + y2) / 2 - (v1 + v2) / 2).pow(2)
    diou = iou - _safe_divide(distance_sq, hull_width.pow(2) + hull_height.pow(2) + eps)
    if kind == "diou":
        return diou
    # atan2(w, h) equals atan(w / h) for h > 0 and stays finite for zero-height boxes.
    v = (4 / math.pi**2) * (torch.atan2(u2 - u1, v2 - v1) - torch.atan2(x2 - x1, y2 - y1)).pow(2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return diou - alpha * v


def _check_finite(boxes: Tensor, name: str) -> Tensor:
    """IoUs of infinite boxes are inf / inf: 0 or NaN without a word in torchvision. Refused here."""
    _check_rows(torch.isfinite(boxes), boxes, name, "finite coordinates")
    return boxes


def _pairwise(boxes1: Tensor, boxes2: Tensor, kind: str, eps: float = 0.0) -> Tensor:
    boxes1 = _check_finite(_upcast(check_boxes(boxes1, "boxes1")), "boxes1")
    boxes2 = _check_finite(_upcast(check_boxes(boxes2, "boxes2")), "boxes2")
    return _iou_family(boxes1[:, None], boxes2[None, :], kind, eps, area_eps=0.0)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU ``[N, M]`` of two sets of xyxy boxes."""
    return _pairwise(boxes1, boxes2, "iou")


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise generalised IoU ``[N, M]``, in [-1, 1] (Rezatofighi et al., 2019)."""
    return _pairwise(boxes1, boxes2, "giou")


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise distance IoU ``[N, M]``: IoU minus squared centre distance over squared enclosing diagonal."""
    return _pairwise(boxes1, boxes2, "diou", eps)


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise complete IoU ``[N, M]``: DIoU minus an aspect-ratio consistency term."""
    return _pairwise(boxes1, boxes2, "ciou", eps)


def _check_paired(boxes: Tensor, name: str) -> Tensor:
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape [N, 4] or [4], got {type(boxes).__name__}")
    if boxes.dim() not in (1, 2) or boxes.shape[-1] != 4:
        raise ValueError(f"{name}: expected shape [N, 4] or [4], got {list(boxes.shape)}")
    return _check_finite(_upcast(check_boxes(boxes.reshape(-1, 4), name)), name).reshape(boxes.shape)


def paired_box_iou(boxes1: Tensor, boxes2: Tensor, kind: str = "iou", eps: float = 1e-7) -> Tensor:
    """IoU, GIoU, DIoU or CIoU (``kind``) of matching rows: ``boxes1[i]`` with ``boxes2[i]``.

    Shapes ``[N, 4]`` or ``[4]``, broadcast against each other. ``eps`` is added to every denominator (union,
    enclosing area, squared diagonal, CIoU's α), as torchvision's box losses do; the box losses are built on this.
    """
    if kind not in IOU_KINDS:
        raise ValueError(f"kind: expected one of {IOU_KINDS}, got {kind!r}")
    boxes1 = _check_paired(boxes1, "boxes1")
    boxes2 = _check_paired(boxes2, "boxes2")
    try:
        torch.broadcast_shapes(boxes1.shape, boxes2.shape)
    except RuntimeError:
        raise ValueError(
            f"boxes1 and boxes2: expected matching rows, got shapes {list(boxes1.shape)} and {list(boxes2.shape)}"
        ) from None
    return _iou_family(boxes1, boxes2, kind, eps, area_eps=eps)


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip ``[..., 4]`` xyxy boxes to an image of ``size = (height, width)``."""
    if not isinstance(boxes, Tensor) or boxes.shape[-1:] != (4,):
        shape = list(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"boxes: expected a tensor of shape [..., 4], got {shape}")
    if not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2:
        raise ValueError(f"size: expected (height, width), got {size!r}")
    height, width = size
    if not height >= 0 or not width >= 0:  # also NaN
        raise ValueError(f"size: expected (height, width) >= 0, got {tuple(size)}")
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x, y), dim=-1).reshape(boxes.shape)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes whose width and height are both at least ``min_size``."""
    boxes = check_boxes(boxes, check_order=False)
    size = boxes[:, 2:] - boxes[:, :2]
    return ((size[:, 0] >= min_size) & (size[:, 1] >= min_size)).nonzero().flatten()
