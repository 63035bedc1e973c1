"""DETR's bipartite matching (Carion et al., 2020, §3.1, eq. 1): each ground-truth object gets the one prediction
(object slot) that makes the total matching cost least; every other prediction is trained towards "no object".

For image i with predictions q (class probabilities p̂_q = softmax(logits_q), boxes b̂_q) and objects k (class
c_k, box b_k, both boxes cxcywh normalised by the image's size), the pairwise cost is

    C[q, k] = −λ_cls · p̂_q(c_k)  +  λ_L1 · ‖b̂_q − b_k‖₁  −  λ_giou · GIoU(b̂_q, b_k)

(λ_cls, λ_L1, λ_giou = 1, 5, 2; −p̂ rather than −log p̂, as the paper's code, so the class term is on the scale of
the box terms), and the matching σ̂ = argmin_σ Σ_k C[σ(k), k] over injective σ is the linear assignment problem,
solved by :func:`zoo.ops.assignment.linear_sum_assignment` (shortest augmenting paths).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from zoo.ops.assignment import linear_sum_assignment
from zoo.ops.boxes import box_convert, generalized_box_iou

__all__ = ["HungarianMatcher"]


def _check_weight(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


class HungarianMatcher:
    """``matcher(pred_logits [N, Q, C + 1], pred_boxes [N, Q, 4], targets)`` → per image ``(prediction index,
    target index)``, two int64 tensors of min(Q, K_i) matched pairs, predictions increasing (module docstring).

    ``targets`` are ``{"labels" [K_i], "boxes" [K_i, 4] cxcywh normalised}`` per image.
    """

    def __init__(self, class_weight: float = 1.0, bbox_weight: float = 5.0, giou_weight: float = 2.0) -> None:
        self.class_weight = _check_weight(class_weight, "class_weight")
        self.bbox_weight = _check_weight(bbox_weight, "bbox_weight")
        self.giou_weight = _check_weight(giou_weight, "giou_weight")
        if self.class_weight == self.bbox_weight == self.giou_weight == 0:
            raise ValueError("class_weight, bbox_weight and giou_weight cannot all be 0: nothing would be matched")

    def cost_matrix(self, logits: Tensor, boxes: Tensor, labels: Tensor, target_boxes: Tensor) -> Tensor:
        """``C [Q, K]`` of one image: predictions ``logits [Q, C + 1]``, ``boxes [Q, 4]`` against its objects."""
        probabilities = logits.softmax(-1)[:, labels]
        l1 = torch.cdist(boxes, target_boxes, p=1)
        giou = generalized_box_iou(box_convert(boxes, "cxcywh", "xyxy"), box_convert(target_boxes, "cxcywh", "xyxy"))
        return self.bbox_weight * l1 - self.class_weight * probabilities - self.giou_weight * giou

    @torch.no_grad()
    def __call__(
        self, pred_logits: Tensor, pred_boxes: Tensor, targets: Sequence[dict[str, Tensor]]
    ) -> list[tuple[Tensor, Tensor]]:
        if len(targets) != len(pred_logits):
            raise ValueError(f"targets: expected one per image ({len(pred_logits)}), got {len(targets)}")
        indices = []
        # One matrix per image: the objects of one image are never matched to another's predictions.
        for logits, boxes, target in zip(pred_logits, pred_boxes, targets, strict=True):
            cost = self.cost_matrix(logits.float(), boxes.float(), target["labels"], target["boxes"].float())
            predictions, objects = linear_sum_assignment(cost.cpu())
            indices.append((predictions.to(logits.device), objects.to(logits.device)))
        return indices
