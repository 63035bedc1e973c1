"""What the label and ranking classification metrics (:mod:`zoo.metrics.labels`, :mod:`zoo.metrics.ranking`) share:
the checks of their tensors, scores, class indices and binary targets, and scikit-learn's average over classes.

Each check raises ``TypeError`` or ``ValueError`` naming the argument, what was expected and what came.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["check_binary", "check_choice", "check_class_indices", "check_scores", "check_tensor", "nan_average"]


def check_tensor(x: Any, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    return x


def check_choice(value: Any, name: str, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {allowed}, got {value!r}")


def check_scores(scores: Tensor, name: str) -> Tensor:
    """Real-valued scores without NaN, as floating point (integer scores are ranked like any others)."""
    if scores.is_complex():
        raise TypeError(f"{name}: expected real scores, got {scores.dtype}")
    if not scores.is_floating_point():
        return scores.double()
    nan = torch.isnan(scores)
    if nan.any():
        raise ValueError(f"{name}: expected scores without NaN, got NaN at index {nan.nonzero()[0].tolist()}")
    return scores


def check_class_indices(labels: Tensor, name: str, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """Integer class indices in [0, num_classes) (or equal to ``ignore_index``), as int64."""
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{name}: expected integer class indices, got dtype {labels.dtype}")
    labels = labels.long()
    outside = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        outside &= labels != ignore_index
    if outside.any():
        allowed = f"[0, {num_classes})" + ("" if ignore_index is None else f" or ignore_index={ignore_index}")
        raise ValueError(f"{name}: expected class indices in {allowed}, got {int(labels[outside][0])}")
    return labels


def check_binary(targets: Tensor, name: str) -> Tensor:
    """0/1 (or boolean) targets as a boolean "is positive" mask."""
    binary = (targets == 0) | (targets == 1)
    if not binary.all():
        raise ValueError(
            f"{name}: expected binary targets (0 or 1), got {targets[~binary][0].item()}; "
            "for more classes pass [N, C] scores or average='macro' with num_classes"
        )
    return targets == 1


def nan_average(values: Tensor, weights: Tensor | None) -> Tensor:
    """scikit-learn's averaging: NaN entries (``zero_division=nan``) drop out; all-zero weights mean no weights."""
    kept = ~values.isnan()
    if not kept.any():
        return values.new_tensor(math.nan)
    values = values[kept]
    if weights is None or not (weights[kept] > 0).any():
        return values.mean()
    weights = weights[kept]
    return (values * weights).sum() / weights.sum()
