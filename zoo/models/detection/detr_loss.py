"""DETR's set prediction loss (Carion et al., 2020, §3.1, eq. 2 and the appendix), the Hungarian loss of the
matching σ̂ (``detr_matcher``):

    L = Σ_q w(y_q) · −log p̂_q(y_q) / Σ_q w(y_q)                        (loss_ce: cross-entropy over all Q slots)
      + λ_L1   · Σ_k ‖b̂_σ̂(k) − b_k‖₁ / B                                (loss_bbox)
      + λ_giou · Σ_k (1 − GIoU(b̂_σ̂(k), b_k)) / B                        (loss_giou)

with y_q the class of the object matched to slot q, or "no object" (the last class, C) for an unmatched slot;
w(no object) = 0.1 (the paper's down-weighting, for the class imbalance), 1 for the others; λ_L1 = 5, λ_giou = 2;
B = max(1, the number of objects in the batch). Boxes are cxcywh normalised by each image's size. The
auxiliary losses (§3.2) repeat the three terms for the output of every earlier decoder layer, each with its own
matching, as ``loss_ce_0``, ``loss_bbox_0``, ``loss_giou_0``, … (layer 0 is the first). Every term is returned
already weighted, so the loss to minimise is the sum of the dict.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.ops.boxes import box_convert
from zoo.ops.losses import generalized_box_iou_loss

from .detr_matcher import HungarianMatcher

__all__ = ["detr_loss", "detr_set_loss"]


def detr_set_loss(
    pred_logits: Tensor,
    pred_boxes: Tensor,
    targets: Sequence[dict[str, Tensor]],
    indices: Sequence[tuple[Tensor, Tensor]],
    num_boxes: float,
    *,
    no_object_weight: float = 0.1,
    class_weight: float = 1.0,
    bbox_weight: float = 5.0,
    giou_weight: float = 2.0,
) -> dict[str, Tensor]:
    """``{"loss_ce", "loss_bbox", "loss_giou"}`` (weighted) of one decoder layer's predictions ``[N, Q, C + 1]`` and
    ``[N, Q, 4]`` under the matching ``indices`` (module docstring)."""
    num_classes = pred_logits.shape[-1] - 1
    image = torch.cat([torch.full_like(slots, index) for index, (slots, _) in enumerate(indices)])
    slot = torch.cat([slots for slots, _ in indices])
    target_classes = torch.full(pred_logits.shape[:2], num_classes, dtype=torch.int64, device=pred_logits.device)
    target_classes[image, slot] = torch.cat(
        [t["labels"][objects] for t, (_, objects) in zip(targets, indices, strict=True)]
    )
    weight = torch.ones(num_classes + 1, dtype=pred_logits.dtype, device=pred_logits.device)
    weight[-1] = no_object_weight
    loss_ce = F.cross_entropy(pred_logits.transpose(1, 2), target_classes, weight)

    matched = pred_boxes[image, slot]
    target_boxes = torch.cat([t["boxes"][objects] for t, (_, objects) in zip(targets, indices, strict=True)]).to(
        matched.dtype
    )
    loss_bbox = (matched - target_boxes).abs().sum() / num_boxes
    corners = [box_convert(boxes, "cxcywh", "xyxy") for boxes in (matched, target_boxes)]
    loss_giou = generalized_box_iou_loss(*corners, reduction="sum") / num_boxes
    return {
        "loss_ce": class_weight * loss_ce,
        "loss_bbox": bbox_weight * loss_bbox,
        "loss_giou": giou_weight * loss_giou,
    }


def detr_loss(
    outputs: dict[str, Tensor | list[dict[str, Tensor]]],
    targets: Sequence[dict[str, Tensor]],
    matcher: HungarianMatcher,
    *,
    no_object_weight: float = 0.1,
    class_weight: float = 1.0,
    bbox_weight: float = 5.0,
    giou_weight: float = 2.0,
) -> dict[str, Tensor]:
    """The Hungarian loss of ``outputs`` (``pred_logits``, ``pred_boxes`` and, for the auxiliary losses,
    ``aux_outputs``: a list of such dicts, first decoder layer first) against ``targets`` (``labels``, ``boxes``
    cxcywh normalised), each layer matched on its own (module docstring)."""
    num_boxes = max(1.0, float(sum(len(t["labels"]) for t in targets)))
    weights = dict(
        no_object_weight=no_object_weight, class_weight=class_weight, bbox_weight=bbox_weight, giou_weight=giou_weight
    )
    layers = [("", outputs)] + [(f"_{index}", aux) for index, aux in enumerate(outputs.get("aux_outputs", []))]
    losses = {}
    for suffix, layer in layers:
        logits, boxes = layer["pred_logits"], layer["pred_boxes"]
        indices = matcher(logits.detach(), boxes.detach(), targets)
        terms = detr_set_loss(logits, boxes, targets, indices, num_boxes, **weights)
        losses.update({name + suffix: value for name, value in terms.items()})
    return losses
