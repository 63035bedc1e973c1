"""The R-CNN box parametrisation (Girshick et al., 2014, appendix C; Ren et al., 2015, eq. 2).

A box is encoded relative to a reference box (an anchor or a proposal) of width ``w_a``, height ``h_a`` and
centre ``(x_a, y_a)`` as

    t_x = w_x (x - x_a) / w_a,    t_y = w_y (y - y_a) / h_a,    t_w = w_w log(w / w_a),    t_h = w_h log(h / h_a)

with per-coordinate weights ``(w_x, w_y, w_w, w_h)`` (Faster R-CNN's box head uses ``(10, 10, 5, 5)``). Widths
are ``x2 - x1`` without a "+1" and centres ``x1 + w / 2``. Decoding inverts this, after clamping ``t_w / w_w``
and ``t_h / w_h`` at ``bbox_xform_clip = log(1000 / 16)`` so that ``exp`` cannot overflow.

Drop-in for ``torchvision.models.detection._utils.BoxCoder``: the same arithmetic in the same order, so the
same floating-point results; ``encode``/``decode`` take per-image lists as torchvision does, ``encode_single``/
``decode_single`` take single tensors.

FCOS's linear parametrisation (Tian et al., 2019, eq. 1) encodes a box by the distances from a point, the centre
``(x_a, y_a)`` of a reference box of size ``w_a × h_a``, to its four sides, divided by that size:

    l = (x_a - x1) / w_a,    t = (y_a - y1) / h_a,    r = (x2 - x_a) / w_a,    b = (y2 - y_a) / h_a

:class:`BoxLinearCoder` is drop-in for torchvision's ``BoxLinearCoder`` (``normalize_by_size`` False leaves the
division out), on tensors of any shape ``[..., 4]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from zoo.ops._graph import check_equal, is_tracing
from zoo.ops.boxes import _check_rows, check_boxes

__all__ = ["BoxCoder", "BoxLinearCoder"]


def _check_list(boxes: Sequence[Tensor], name: str) -> list[Tensor]:
    if not isinstance(boxes, (list, tuple)):
        raise TypeError(
            f"{name}: expected a list of per-image [N_i, 4] tensors, got {type(boxes).__name__} "
            "(use encode_single / decode_single for a single tensor)"
        )
    return [check_boxes(b, f"{name}[{i}]", check_order=False) for i, b in enumerate(boxes)]


def _centre_size(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights, widths, heights


class BoxCoder:
    """Encode boxes as ``(t_x, t_y, t_w, t_h)`` offsets from reference boxes, and decode them back.

    Args:
        weights: ``(w_x, w_y, w_w, w_h)``, positive.
        bbox_xform_clip: upper bound on the decoded log-scale ``t_w / w_w`` and ``t_h / w_h``.
    """

    def __init__(
        self,
        weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
        bbox_xform_clip: float = math.log(1000.0 / 16),
    ) -> None:
        if len(weights) != 4 or not all(isinstance(w, (int, float)) and w > 0 for w in weights):
            raise ValueError(f"weights: expected four positive numbers (w_x, w_y, w_w, w_h), got {weights!r}")
        if not isinstance(bbox_xform_clip, (int, float)) or math.isnan(bbox_xform_clip):
            raise ValueError(f"bbox_xform_clip: expected a number, got {bbox_xform_clip!r}")
        self.weights = tuple(weights)
        self.bbox_xform_clip = bbox_xform_clip

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weights={self.weights}, bbox_xform_clip={self.bbox_xform_clip})"

    def encode(self, reference_boxes: Sequence[Tensor], proposals: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """Per image, the offsets ``[N_i, 4]`` of ``reference_boxes[i]`` (targets) from ``proposals[i]``."""
        reference_boxes = _check_list(reference_boxes, "reference_boxes")
        proposals = _check_list(proposals, "proposals")
        if [len(b) for b in reference_boxes] != [len(p) for p in proposals]:
            raise ValueError(
                "reference_boxes and proposals: expected the same number of boxes per image, got "
                f"{[len(b) for b in reference_boxes]} and {[len(p) for p in proposals]}"
            )
        if not reference_boxes:
            return ()
        targets = self.encode_single(torch.cat(reference_boxes), torch.cat(proposals))
        return targets.split([len(b) for b in reference_boxes])

    def encode_single(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        """Offsets ``[N, 4]`` of the boxes ``reference_boxes [N, 4]`` from the boxes ``proposals [N, 4]``."""
        reference_boxes = check_boxes(reference_boxes, "reference_boxes", check_order=False)
        proposals = check_boxes(proposals, "proposals", check_order=False)
        if len(reference_boxes) != len(proposals):
            raise ValueError(
                f"reference_boxes and proposals: expected the same number of boxes, "
                f"got {len(reference_boxes)} and {len(proposals)}"
            )
        # The offsets divide by the proposal's size. (A zero-size reference box gives -inf size codes, as in
        # torchvision: detectors encode placeholder boxes for images without objects and never use their codes.)
        _check_rows(proposals[:, 2:] > proposals[:, :2], proposals, "proposals", "boxes of positive width and height")
        weights = torch.as_tensor(self.weights, dtype=reference_boxes.dtype, device=reference_boxes.device)
        target_x, target_y, target_w, target_h = _centre_size(reference_boxes)
        anchor_x, anchor_y, anchor_w, anchor_h = _centre_size(proposals)
        # Weight times difference, then divided: the order of torchvision's operations (same rounding).
        dx = weights[0] * (target_x - anchor_x) / anchor_w
        dy = weights[1] * (target_y - anchor_y) / anchor_h
        dw = weights[2] * torch.log(target_w / anchor_w)
        dh = weights[3] * torch.log(target_h / anchor_h)
        return torch.stack((dx, dy, dw, dh), dim=1)

    def decode(self, rel_codes: Tensor, boxes: Sequence[Tensor]) -> Tensor:
        """Decode ``rel_codes`` (``sum_i N_i`` rows of ``4 K`` offsets, any shape with that many elements)
        against the per-image reference boxes ``boxes[i] [N_i, 4]``: boxes ``[sum_i N_i, K, 4]``."""
        boxes = _check_list(boxes, "boxes")
        if not isinstance(rel_codes, Tensor):
            raise TypeError(f"rel_codes: expected a tensor, got {type(rel_codes).__name__}")
        total = sum(b.shape[0] for b in boxes)  # shapes, not len(): an exported graph keeps them symbolic
        if not is_tracing() and (total == 0 or rel_codes.numel() % (4 * total) != 0):
            if total == 0 and rel_codes.numel() == 0:
                # torchvision returns rel_codes' 2-D shape here; [0, K, 4] keeps the documented shape.
                per_box = rel_codes.shape[-1] // 4 if rel_codes.dim() else 1
                return rel_codes.new_zeros((0, per_box, 4))
            raise ValueError(
                f"rel_codes: expected a multiple of 4 x {total} elements (4 offsets per class per box), "
                f"got shape {list(rel_codes.shape)}"
            )
        decoded = self.decode_single(rel_codes.reshape(total, -1), torch.cat(boxes))
        return decoded.reshape(total, -1, 4)

    def decode_single(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        """Boxes ``[N, 4K]`` decoded from ``rel_codes [N, 4K]`` (K sets of offsets per box) and ``boxes [N, 4]``."""
        if not isinstance(rel_codes, Tensor) or rel_codes.dim() != 2 or rel_codes.shape[1] % 4 != 0:
            shape = list(rel_codes.shape) if isinstance(rel_codes, Tensor) else type(rel_codes).__name__
            raise ValueError(f"rel_codes: expected a tensor [N, 4K], got {shape}")
        boxes = check_boxes(boxes, "boxes", check_order=False)
        check_equal(
            boxes.shape[0],
            rel_codes.shape[0],
            lambda: f"rel_codes and boxes: expected one row per box, got {len(rel_codes)} rows and {len(boxes)} boxes",
        )
        if not rel_codes.is_floating_point():
            rel_codes = rel_codes.float()
        ctr_x, ctr_y, widths, heights = (v[:, None] for v in _centre_size(boxes.to(rel_codes.dtype)))
        weight_x, weight_y, weight_w, weight_h = self.weights
        dx = rel_codes[:, 0::4] / weight_x
        dy = rel_codes[:, 1::4] / weight_y
        dw = (rel_codes[:, 2::4] / weight_w).clamp(max=self.bbox_xform_clip)
        dh = (rel_codes[:, 3::4] / weight_h).clamp(max=self.bbox_xform_clip)
        centre_x = dx * widths + ctr_x
        centre_y = dy * heights + ctr_y
        half_w = 0.5 * (torch.exp(dw) * widths)
        half_h = 0.5 * (torch.exp(dh) * heights)
        corners = (centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h)
        return torch.stack(corners, dim=2).flatten(1)


def _check_last_dim(boxes: Tensor, name: str) -> None:
    if not isinstance(boxes, Tensor) or boxes.dim() == 0 or boxes.shape[-1] != 4:
        shape = list(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"{name}: expected a tensor [..., 4], got {shape}")


class BoxLinearCoder:
    """Encode boxes as FCOS's ``(l, t, r, b)`` distances from the centres of reference boxes, and back (module
    docstring). ``normalize_by_size`` divides the distances by the reference box's width and height."""

    def __init__(self, normalize_by_size: bool = True) -> None:
        if not isinstance(normalize_by_size, bool):
            raise TypeError(f"normalize_by_size: expected a bool, got {type(normalize_by_size).__name__}")
        self.normalize_by_size = normalize_by_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(normalize_by_size={self.normalize_by_size})"

    def _sizes(self, boxes: Tensor) -> Tensor:
        widths = boxes[..., 2] - boxes[..., 0]
        heights = boxes[..., 3] - boxes[..., 1]
        return torch.stack((widths, heights, widths, heights), dim=-1)

    def encode(self, reference_boxes: Tensor, proposals: Tensor) -> Tensor:
        """The distances ``[..., 4]`` from the centres of ``reference_boxes`` (the points) to the sides of the
        boxes ``proposals`` (the targets), both ``[..., 4]`` xyxy of one shape (torchvision's argument names)."""
        _check_last_dim(reference_boxes, "reference_boxes")
        _check_last_dim(proposals, "proposals")
        if reference_boxes.shape != proposals.shape:
            raise ValueError(
                "reference_boxes and proposals: expected one shape, got "
                f"{list(reference_boxes.shape)} and {list(proposals.shape)}"
            )
        centre_x = 0.5 * (reference_boxes[..., 0] + reference_boxes[..., 2])
        centre_y = 0.5 * (reference_boxes[..., 1] + reference_boxes[..., 3])
        distances = torch.stack(
            (
                centre_x - proposals[..., 0],
                centre_y - proposals[..., 1],
                proposals[..., 2] - centre_x,
                proposals[..., 3] - centre_y,
            ),
            dim=-1,
        )
        return distances / self._sizes(reference_boxes) if self.normalize_by_size else distances

    def decode(self, rel_codes: Tensor, boxes: Tensor) -> Tensor:
        """Boxes ``[..., 4]`` xyxy from the distances ``rel_codes [..., 4]`` to the centres of ``boxes [..., 4]``."""
        _check_last_dim(rel_codes, "rel_codes")
        _check_last_dim(boxes, "boxes")
        if boxes.shape != rel_codes.shape:
            raise ValueError(
                f"rel_codes and boxes: expected one shape, got {list(rel_codes.shape)} and {list(boxes.shape)}"
            )
        boxes = boxes.to(dtype=rel_codes.dtype)
        centre_x = 0.5 * (boxes[..., 0] + boxes[..., 2])
        centre_y = 0.5 * (boxes[..., 1] + boxes[..., 3])
        if self.normalize_by_size:
            rel_codes = rel_codes * self._sizes(boxes)
        corners = (
            centre_x - rel_codes[..., 0],
            centre_y - rel_codes[..., 1],
            centre_x + rel_codes[..., 2],
            centre_y + rel_codes[..., 3],
        )
        return torch.stack(corners, dim=-1)
