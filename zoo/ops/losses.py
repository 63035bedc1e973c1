"""Detection losses: drop-in for ``torchvision.ops``' box and focal losses, smooth L1, and CenterNet's heatmap loss.

Box losses take matched rows (``boxes1[i]`` against ``boxes2[i]``) of xyxy boxes and add ``eps`` to every
denominator, as torchvision does; the IoU arithmetic is ``zoo.ops.boxes.paired_box_iou``:

    L_GIoU = 1 - GIoU    (Rezatofighi et al., 2019)
    L_DIoU = 1 - DIoU    L_CIoU = 1 - CIoU    (Zheng et al., 2020; CIoU's α is held constant, no gradient)

Sigmoid focal loss (Lin et al., 2017, RetinaNet), with p = σ(x) and a target y in [0, 1]:

    p_t = p y + (1 - p)(1 - y),   α_t = α y + (1 - α)(1 - y)
    FL  = α_t (1 - p_t)^γ BCE(x, y)                      (α = -1 leaves α_t out)

Smooth L1 (Girshick, 2015, Fast R-CNN), with d = |input - target|: 0.5 d² / β where d < β, else d - 0.5 β;
β = 0 is the L1 loss.

CenterNet's penalty-reduced pixel-wise focal loss (Law & Deng, 2018, CornerNet eq. 1; Zhou et al., 2019,
"Objects as Points" eq. 1), with Ŷ = clamp(σ(logits), ε, 1 - ε) and Y the Gaussian-splatted target heatmap:

    L = -1/N Σ_xyc { (1 - Ŷ)^α log Ŷ              if Y = 1
                    (1 - Y)^β Ŷ^α log(1 - Ŷ)      otherwise }

N is the number of pixels with Y = 1 over the whole batch (at least 1, so an image without objects gives the
negative term alone), as in the CenterNet code.

Soft Dice loss for segmentation (Milletari et al., 2016, V-Net), with p = softmax(logits) over the classes and
y the one-hot target, summed over the non-ignored pixels of the batch, per class c:

    Dice_c = (2 Σ p_c y_c + s) / (Σ p_c + Σ y_c + s),    L = 1 - mean_c Dice_c     (smoothing s = 1)

Reductions are ``"none" | "mean" | "sum"``. The mean of an empty input is 0, kept in the autograd graph:
torchvision's box losses do this; its focal loss and ``F.smooth_l1_loss`` return NaN there, which would
poison a training step that happens to have no targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.ops._graph import check_all
from zoo.ops.boxes import paired_box_iou

__all__ = [
    "REDUCTIONS",
    "generalized_box_iou_loss",
    "distance_box_iou_loss",
    "complete_box_iou_loss",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "centernet_focal_loss",
    "dice_loss",
]

REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if loss.numel() else loss.sum() * 0.0


def _check_pair(first: Tensor, second: Tensor, names: tuple[str, str]) -> None:
    """Both tensors, of one shape (no silent broadcasting of a prediction against a wrong-sized target)."""
    for value, name in zip((first, second), names, strict=True):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if first.shape != second.shape:
        raise ValueError(
            f"{names[0]} and {names[1]}: expected one shape, got {list(first.shape)} and {list(second.shape)}"
        )
    if not first.is_floating_point():
        raise TypeError(f"{names[0]}: expected a floating-point tensor, got {first.dtype}")


def _box_loss(boxes1: Tensor, boxes2: Tensor, kind: str, reduction: str, eps: float) -> Tensor:
    _check_reduction(reduction)
    return _reduce(1 - paired_box_iou(boxes1, boxes2, kind, eps), reduction)


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """``1 - GIoU`` of matched xyxy boxes (``[N, 4]`` or ``[4]``), as ``torchvision.ops.generalized_box_iou_loss``.

    Unlike torchvision, boxes with ``x2 < x1`` or ``y2 < y1`` or NaN raise ``ValueError``.
    """
    return _box_loss(boxes1, boxes2, "giou", reduction, eps)


def distance_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """``1 - DIoU`` of matched xyxy boxes, as ``torchvision.ops.distance_box_iou_loss``."""
    return _box_loss(boxes1, boxes2, "diou", reduction, eps)


def complete_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """``1 - CIoU`` of matched xyxy boxes, as ``torchvision.ops.complete_box_iou_loss``.

    ``eps`` goes into every denominator; torchvision (0.29) uses it only in α and keeps 1e-7 for the IoU and the
    diagonal, so the two agree at the default ``eps`` and differ by O(eps) otherwise. Zero-area boxes give a
    finite loss here (torchvision's atan(w / h) is NaN for w = h = 0).
    """
    return _box_loss(boxes1, boxes2, "ciou", reduction, eps)


def sigmoid_focal_loss(
    inputs: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2, reduction: str = "none"
) -> Tensor:
    """RetinaNet's focal loss on logits ``inputs`` and targets in [0, 1] of the same shape.

    As ``torchvision.ops.sigmoid_focal_loss``; ``alpha = -1`` switches the class weighting off. Integer or boolean
    targets are accepted and cast to the logits' dtype.
    """
    if not (0 <= alpha <= 1 or alpha == -1):
        raise ValueError(f"alpha: expected a value in [0, 1], or -1 for no weighting, got {alpha}")
    if gamma < 0:
        raise ValueError(f"gamma: expected a value >= 0, got {gamma}")
    _check_reduction(reduction)
    _check_pair(inputs, targets, ("inputs", "targets"))
    targets = targets.to(inputs.dtype)
    message = "targets: expected values in [0, 1] (outside, the loss turns negative)"
    check_all((targets >= 0) & (targets <= 1), lambda: message, message)
    prob = torch.sigmoid(inputs)
    cross_entropy = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    prob_true = prob * targets + (1 - prob) * (1 - targets)
    loss = cross_entropy * (1 - prob_true) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, *, beta: float = 1.0, reduction: str = "mean") -> Tensor:
    """Smooth L1 (Huber divided by β), equal to ``F.smooth_l1_loss(input, target, reduction=..., beta=...)``.

    Unlike PyTorch, ``input`` and ``target`` must have one shape (PyTorch broadcasts with a warning).
    """
    if beta < 0:
        raise ValueError(f"beta: expected a value >= 0, got {beta}")
    _check_reduction(reduction)
    _check_pair(input, target, ("input", "target"))
    distance = (input - target).abs()
    if beta == 0:
        # The quadratic zone is empty; evaluating it anyway would put 0 * inf = NaN into the gradient.
        loss = distance
    else:
        loss = torch.where(distance < beta, 0.5 * distance.pow(2) / beta, distance - 0.5 * beta)
    return _reduce(loss, reduction)


def centernet_focal_loss(
    logits: Tensor, heatmap: Tensor, alpha: float = 2.0, beta: float = 4.0, eps: float = 1e-4
) -> Tensor:
    """CenterNet/CornerNet heatmap focal loss (a scalar) from raw ``logits`` and a target ``heatmap`` in [0, 1].

    Takes logits, not probabilities: the sigmoid is applied here and clamped to ``[eps, 1 - eps]`` so that
    ``log`` stays finite (CenterNet's 1e-4); like the original, logits beyond about ±9.2 then get no gradient.
    Pixels where ``heatmap == 1`` are the positives; the sum is divided by their count over the batch (at least 1).
    """
    for value, name in ((alpha, "alpha"), (beta, "beta")):
        if value < 0:
            raise ValueError(f"{name}: expected a value >= 0, got {value}")
    if not 0 < eps < 0.5:
        raise ValueError(f"eps: expected a value in (0, 0.5), got {eps}")
    _check_pair(logits, heatmap, ("logits", "heatmap"))
    heatmap = heatmap.to(logits.dtype)
    message = "heatmap: expected values in [0, 1] and no NaN"
    check_all((heatmap >= 0) & (heatmap <= 1), lambda: message, message)
    prob = torch.sigmoid(logits).clamp(eps, 1 - eps)
    positive = heatmap == 1
    positive_term = (1 - prob).pow(alpha) * prob.log()
    negative_term = (1 - heatmap).pow(beta) * prob.pow(alpha) * (1 - prob).log()
    total = torch.where(positive, positive_term, negative_term).sum()
    return -total / positive.sum().clamp(min=1)


def dice_loss(logits: Tensor, targets: Tensor, ignore_index: int | None = None, smooth: float = 1.0) -> Tensor:
    """Soft Dice loss (a scalar) from ``logits [N, C, H, W]`` and class-index ``targets [N, H, W]``.

    Pixels equal to ``ignore_index`` count neither in the predictions nor in the targets; every class is in the
    mean (a class absent from a batch scores ``s / (Σ p_c + s)``, which pushes its probabilities down).
    """
    if not isinstance(logits, Tensor) or logits.dim() < 2 or not logits.is_floating_point():
        raise TypeError("logits: expected a floating-point tensor [N, C, ...]")
    if not isinstance(targets, Tensor) or targets.shape != logits.shape[:1] + logits.shape[2:]:
        shape = list(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"targets: expected shape {[logits.shape[0], *logits.shape[2:]]}, got {shape}")
    num_classes = logits.shape[1]
    valid = torch.ones_like(targets, dtype=torch.bool) if ignore_index is None else targets != ignore_index
    labels = torch.where(valid, targets, 0)
    check_all(
        (labels >= 0) & (labels < num_classes),
        lambda: f"targets: expected class indices in 0..{num_classes - 1}, got {labels.unique().tolist()}",
        f"targets: expected class indices in 0..{num_classes - 1}",
    )
    probs = logits.softmax(dim=1) * valid.unsqueeze(1)
    one_hot = F.one_hot(labels, num_classes).movedim(-1, 1) * valid.unsqueeze(1)
    dims = [0, *range(2, logits.dim())]
    intersection = (probs * one_hot).sum(dims)
    dice = (2 * intersection + smooth) / (probs.sum(dims) + one_hot.sum(dims) + smooth)
    return 1 - dice.mean()
