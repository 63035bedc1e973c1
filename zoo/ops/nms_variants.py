"""NMS variants beside greedy NMS and Soft-NMS (``zoo.ops.nms``): DIoU-NMS, weighted (box-voting) NMS and
SOLOv2's Matrix NMS.

Each visits the boxes by decreasing score (equal scores by index, as ``nms``) and differs in what a kept box
does to the others:

DIoU-NMS (Zheng et al., 2020, Distance-IoU Loss, arXiv:1911.08287, eq. 11) suppresses box B_i when

    IoU(M, B_i) − R_DIoU(M, B_i)^β > ε,     R_DIoU = ρ²(b_M, b_i) / c²

(ρ: the distance between the two centres, c: the diagonal of the smallest box enclosing both). Two boxes that
overlap but sit apart — neighbouring objects in a crowd — are kept where plain NMS would drop one. β = 1 is the
paper's form (IoU − R is ``distance_box_iou``); YOLOv4 uses β = 0.6. As in ``nms``, strictly greater than the
threshold suppresses (the paper keeps a box for a value < ε).

Weighted NMS (box voting: Gidaris and Komodakis, 2015, arXiv:1505.01749; YOLOv5's ``merge`` NMS) keeps the
boxes greedy NMS keeps, and moves each kept box M to the score-weighted mean of every box that overlaps it with
IoU > t (M included, IoU 1):

    M' = Σ_j s_j b_j / Σ_j s_j    over j with IoU(M, b_j) > t

The boxes several detections agree on are averaged rather than the single best one taken.

Matrix NMS (Wang et al., 2020, SOLOv2, arXiv:2003.10152, eq. 4) suppresses nothing: it decays every score at
once, in parallel, from the IoU matrix. For box j and each higher-scored box i (of the same label), the decay
is f(IoU_ij) / f(IoU_i^max), where IoU_i^max = max over boxes k scored above i of IoU_ki is how much box i was
itself likely suppressed; box j takes the smallest:

    decay_j = min_{i: s_i > s_j} f(IoU_ij) / f(IoU_i^max),   s_j' = s_j · decay_j
    linear: f(iou) = 1 − iou            gaussian: f(iou) = exp(−σ · iou²)

(SOLOv2 applies it to mask IoUs; here to box IoUs). The top box keeps its score. A threshold on the decayed
scores then plays NMS's role.
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.ops.boxes import _upcast, box_iou, check_boxes, distance_box_iou
from zoo.ops.nms import (
    _check_inputs,
    _check_no_nan,
    _check_scores,
    _check_threshold,
    _fixed_point,
    _visiting_order,
    nms,
)

__all__ = ["MATRIX_NMS_KERNELS", "diou_nms", "matrix_nms", "weighted_nms"]

MATRIX_NMS_KERNELS = ("gaussian", "linear")


def _greedy_from_matrix(suppresses: Tensor) -> Tensor:
    """Positions kept by greedy NMS, given ``suppresses[i, j]`` (i visited before j suppresses j)."""
    later = torch.ones_like(suppresses).triu_(1)
    matrix = suppresses & later
    return _fixed_point(len(matrix), lambda keep: matrix[keep].any(dim=0), matrix.device).nonzero().squeeze(1)


def diou_nms(boxes: Tensor, scores: Tensor, iou_threshold: float, beta: float = 1.0) -> Tensor:
    """DIoU-NMS of ``[N, 4]`` xyxy boxes (module docstring): int64 indices of the kept boxes by decreasing
    score. A kept box suppresses a lower-scored one when IoU − R_DIoU^β between them exceeds ``iou_threshold``."""
    boxes, iou_threshold = _check_inputs(boxes, scores, iou_threshold)
    beta = _check_threshold(beta, "beta")
    if not beta > 0:
        raise ValueError(f"beta: expected a value > 0, got {beta}")
    boxes = _upcast(check_boxes(boxes))
    _check_no_nan(scores)
    if not len(boxes):
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = _visiting_order(scores)
    ordered = boxes[order]
    iou = box_iou(ordered, ordered)
    distance_penalty = (iou - distance_box_iou(ordered, ordered)).clamp_(min=0)  # R = IoU − DIoU = ρ²/c²
    criterion = iou - distance_penalty if beta == 1 else iou - distance_penalty.pow(beta)
    return order[_greedy_from_matrix(criterion > iou_threshold)]


def weighted_nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> tuple[Tensor, Tensor]:
    """Weighted (box-voting) NMS of ``[N, 4]`` xyxy boxes (module docstring).

    Returns ``(keep, merged)``: the indices greedy ``nms`` keeps (by decreasing score) and, for each, the
    score-weighted mean ``[K, 4]`` of the boxes overlapping it with IoU > ``iou_threshold``. The scores are
    the weights, so they must not be negative.
    """
    keep = nms(boxes, scores, iou_threshold)
    if scores.is_floating_point() and bool((scores < 0).any()):
        raise ValueError(f"scores: expected values >= 0 (they are the voting weights), got min {scores.min():.4g}")
    boxes = _upcast(boxes)
    weights = (box_iou(boxes[keep], boxes) > iou_threshold) * scores.to(boxes.dtype)
    total = weights.sum(dim=1, keepdim=True)
    # A kept box of score 0 has no weight to vote with: it stays where it is.
    merged = torch.where(total > 0, weights @ boxes / total.clamp(min=torch.finfo(boxes.dtype).tiny), boxes[keep])
    return keep, merged


def matrix_nms(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor | None = None,
    kernel: str = "gaussian",
    sigma: float = 2.0,
) -> Tensor:
    """SOLOv2's Matrix NMS of ``[N, 4]`` xyxy boxes (module docstring): the decayed scores, ``[N]``, in the
    input order. With ``labels``, only boxes of the same label decay each other. ``sigma`` is the Gaussian
    kernel's (SOLOv2: 2.0)."""
    if kernel not in MATRIX_NMS_KERNELS:
        raise ValueError(f"kernel: expected one of {MATRIX_NMS_KERNELS}, got {kernel!r}")
    sigma = _check_threshold(sigma, "sigma")
    if kernel == "gaussian" and not sigma > 0:
        raise ValueError(f"sigma: expected a value > 0, got {sigma}")
    boxes = _upcast(check_boxes(boxes))
    _check_scores(scores, len(boxes))
    _check_no_nan(scores)
    if labels is not None:
        _check_scores(labels, len(boxes), "labels")
    if not len(boxes):
        return scores.clone()
    order = _visiting_order(scores)
    iou = box_iou(boxes[order], boxes[order]).triu_(1)  # iou[i, j] for i visited before j
    if labels is not None:
        ordered_labels = labels[order]
        iou = iou * (ordered_labels[:, None] == ordered_labels[None, :])
    compensation = iou.max(dim=0).values[:, None]  # IoU_i^max, by row i
    if kernel == "gaussian":
        ratio = torch.exp(-sigma * (iou**2 - compensation**2))
    else:
        # A box i that coincides with one above it (IoU_i^max = 1) decays what it overlaps to 0.
        ratio = (1 - iou) / (1 - compensation).clamp(min=torch.finfo(iou.dtype).tiny)
    # Only the boxes visited earlier count; the others (and i = j) contribute no decay.
    ratio = torch.where(torch.ones_like(iou, dtype=torch.bool).triu_(1), ratio, torch.ones_like(ratio))
    decay = ratio.min(dim=0).values  # <= 1: the top box's row (IoU^max = 0) bounds every column
    decayed = torch.empty_like(decay)
    decayed[order] = scores[order].to(decay.dtype) * decay
    return decayed
