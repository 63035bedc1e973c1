"""Score-based (ranking) classification metrics: ROC curve and AUC, precision-recall curve, average precision.

Every function gives what its scikit-learn counterpart gives (named in each docstring); the tests check that.

    ROC AUC = P(s⁺ > s⁻) + ½ P(s⁺ = s⁻)  over all (positive, negative) pairs       (Mann–Whitney U / (P·N))
            = (Σ rank(s⁺) − P(P + 1)/2) / (P·N)  with tied scores sharing their average rank
            = ∫ TPR dFPR  by the trapezoid rule, one ROC point per distinct score  (Hanley & McNeil, 1982)

    AP = Σ_n (R_n − R_{n−1}) P_n  over the distinct scores, highest first (no interpolation)

Scores are ranked, so any monotone transform (logits, probabilities) gives the same curves. Rates, AUC and AP are
computed in float64, as scikit-learn does. ``[N, C]`` scores with ``[N]`` class indices give the one-vs-rest
average. The label-based metrics (confusion matrix, accuracy, precision / recall / F1) are :mod:`zoo.metrics.labels`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from zoo.metrics.base import Metric
from zoo.metrics.classification_inputs import (
    check_binary,
    check_choice,
    check_class_indices,
    check_scores,
    check_tensor,
    nan_average,
)

__all__ = [
    "roc_curve",
    "roc_auc_trapezoid",
    "roc_auc_rank",
    "roc_auc",
    "precision_recall_curve",
    "average_precision",
    "ROCAUC",
    "AveragePrecision",
]

# average= for the one-vs-rest ranking metrics, as in sklearn.metrics.roc_auc_score(multi_class="ovr").
_OVR_AVERAGES = ("macro", "weighted", None)


# --- input checks ---------------------------------------------------------------------------------------------------


def _binary_inputs(scores: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Validated ``(scores, is_positive)`` for the binary ranking metrics."""
    scores, targets = check_tensor(scores, "scores"), check_tensor(targets, "targets")
    if scores.dim() != 1 or targets.shape != scores.shape:
        raise ValueError(
            f"expected 1-D scores and targets of the same length, got scores {list(scores.shape)} "
            f"and targets {list(targets.shape)}"
        )
    return check_scores(scores, "scores"), check_binary(targets, "targets")


def _score_column_as_binary(scores: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """``[N, 1]`` scores (a sigmoid head's usual output) are the ``[N]`` binary scores, not a one-vs-rest over a
    single class; ``[N, 1]`` targets beside them are ``[N]`` too."""
    if check_tensor(scores, "scores").dim() == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
        if isinstance(targets, Tensor) and targets.shape == (len(scores), 1):
            targets = targets[:, 0]
    return scores, targets


def _check_both_classes(positive: Tensor) -> int:
    """Number of positives; ROC AUC needs at least one positive and one negative."""
    num_positive = int(positive.sum())
    if num_positive in (0, positive.numel()):
        raise ValueError(
            f"ROC AUC is undefined with one class only: targets hold {num_positive} positives out of "
            f"{positive.numel()} (scikit-learn warns and returns NaN here)"
        )
    return num_positive


# --- ranking metrics: ROC, AUC, PR, AP ------------------------------------------------------------------------------


def _tie_group_ends(sorted_values: Tensor) -> Tensor:
    """Index of the last element of each run of equal values in a sorted 1-D tensor."""
    is_last = torch.ones_like(sorted_values, dtype=torch.bool)
    is_last[:-1] = sorted_values[1:] != sorted_values[:-1]
    return is_last.nonzero().flatten()


def _counts_at_thresholds(scores: Tensor, positive: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(false positives, true positives, threshold)`` per distinct score, highest first, calling every sample
    with score >= threshold positive. Tied scores are one threshold, so they enter the curve together."""
    scores, order = scores.sort(descending=True)
    ends = _tie_group_ends(scores)
    true_positives = positive[order].double().cumsum(0)[ends]
    false_positives = (ends + 1).double() - true_positives
    return false_positives, true_positives, scores[ends]


def roc_curve(scores: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(fpr, tpr, thresholds)`` for binary targets, as ``sklearn.metrics.roc_curve(drop_intermediate=False)``.

    One point per distinct score (highest first) after a first point (0, 0) at threshold ``+inf``. With no
    negatives (positives) the fpr (tpr) is NaN and a warning is issued, as in scikit-learn.
    """
    scores, positive = _binary_inputs(scores, targets)
    false_positives, true_positives, thresholds = _counts_at_thresholds(scores, positive)
    origin = false_positives.new_zeros(1)
    false_positives, true_positives = torch.cat([origin, false_positives]), torch.cat([origin, true_positives])
    thresholds = torch.cat([thresholds.new_full((1,), math.inf), thresholds])
    for counts, kind in ((false_positives, "negative"), (true_positives, "positive")):
        if counts[-1] == 0:
            warnings.warn(f"roc_curve: no {kind} targets, so that rate is NaN", RuntimeWarning, stacklevel=2)
    return false_positives / false_positives[-1], true_positives / true_positives[-1], thresholds


def roc_auc_trapezoid(scores: Tensor, targets: Tensor) -> Tensor:
    """Area under :func:`roc_curve` by the trapezoid rule (``sklearn.metrics.roc_auc_score``); float64 scalar.

    A run of tied scores is one ROC segment, whose trapezoid is exactly the ½-credit the rank form gives ties.
    Raises ``ValueError`` when the targets hold one class only.
    """
    scores, positive = _binary_inputs(scores, targets)
    _check_both_classes(positive)
    fpr, tpr, _ = roc_curve(scores, positive)
    return torch.trapezoid(tpr, fpr)


def roc_auc_rank(scores: Tensor, targets: Tensor) -> Tensor:
    """ROC AUC as the Mann–Whitney U statistic over P·N, from average ranks (``sklearn.metrics.roc_auc_score``).

    Equals the mean over all (positive, negative) pairs of ``[s⁺ > s⁻] + ½[s⁺ = s⁻]`` without forming the pairs:
    one sort, O(n log n). Raises ``ValueError`` when the targets hold one class only. Float64 scalar.
    """
    scores, positive = _binary_inputs(scores, targets)
    num_positive = _check_both_classes(positive)
    num_negative = positive.numel() - num_positive
    scores, order = scores.sort()
    ends = _tie_group_ends(scores)
    starts = torch.cat([ends.new_zeros(1), ends[:-1] + 1])
    mean_rank = (starts + ends).double() / 2 + 1  # 1-based rank shared by every member of a tie group
    positives_per_group = positive[order].double().cumsum(0)[ends].diff(prepend=mean_rank.new_zeros(1))
    rank_sum = (positives_per_group * mean_rank).sum()
    return (rank_sum - num_positive * (num_positive + 1) / 2) / (num_positive * num_negative)


def _one_vs_rest(
    binary_metric: Callable[[Tensor, Tensor], Tensor],
    scores: Tensor,
    targets: Tensor,
    average: str | None,
    *,
    every_class: bool = False,
) -> Tensor:
    """A binary ranking metric per class (that class vs the rest), then averaged as scikit-learn's ``"ovr"``."""
    check_choice(average, "average", _OVR_AVERAGES)
    check_tensor(targets, "targets")
    if scores.dim() != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(
            f"expected [N, C] scores and [N] class indices, got scores {list(scores.shape)} and "
            f"targets {list(targets.shape)}"
        )
    num_classes = scores.shape[1]
    support = torch.bincount(check_class_indices(targets, "targets", num_classes), minlength=num_classes)
    if every_class and (support == 0).any():
        absent = int((support == 0).nonzero()[0])
        raise ValueError(f"one-vs-rest needs every class in targets; class {absent} never occurs")
    # Each class needs its own sort of its own score column, so this loops over the C classes.
    per_class = torch.stack([binary_metric(scores[:, c], targets == c) for c in range(num_classes)])
    if average is None:
        return per_class
    return nan_average(per_class, support.double() if average == "weighted" else None)


def roc_auc(scores: Tensor, targets: Tensor, *, average: str | None = "macro") -> Tensor:
    """ROC AUC (rank form): binary for ``[N]`` scores, one-vs-rest for ``[N, C]`` scores and ``[N]`` class indices.

    The multiclass form equals ``sklearn.metrics.roc_auc_score(multi_class="ovr", average=average)``
    (``"macro"``, ``"weighted"`` by class frequency, or ``None`` for the ``[C]`` per-class AUCs); unlike scikit-learn
    it does not require the rows to sum to one. Every class must occur in ``targets``. ``[N, 1]`` scores are
    binary, as ``sklearn.metrics.roc_auc_score`` reads a single column.
    """
    scores, targets = _score_column_as_binary(scores, targets)
    if scores.dim() != 2:
        return roc_auc_rank(scores, targets)
    return _one_vs_rest(roc_auc_rank, scores, targets, average, every_class=True)


def precision_recall_curve(scores: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(precision, recall, thresholds)`` as ``sklearn.metrics.precision_recall_curve`` (scikit-learn >= 1.5).

    One point per distinct score in increasing threshold order, then a last point (precision 1, recall 0) with no
    threshold. With no positive targets recall is 1 everywhere and a warning is issued, as in scikit-learn.
    """
    scores, positive = _binary_inputs(scores, targets)
    false_positives, true_positives, thresholds = _counts_at_thresholds(scores, positive)
    precision_ = true_positives / (true_positives + false_positives)  # never 0/0: each threshold has a sample
    num_positive = positive.sum()
    if num_positive == 0:
        warnings.warn("precision_recall_curve: no positive targets, recall is set to 1", RuntimeWarning, stacklevel=2)
        recall_ = torch.ones_like(true_positives)
    else:
        recall_ = true_positives / num_positive
    one = precision_.new_ones(1)
    return torch.cat([precision_.flip(0), one]), torch.cat([recall_.flip(0), 0 * one]), thresholds.flip(0)


def average_precision(scores: Tensor, targets: Tensor, *, average: str | None = "macro") -> Tensor:
    """AP = Σ_n (R_n − R_{n−1}) P_n, as ``sklearn.metrics.average_precision_score``; float64.

    ``[N]`` scores with binary targets, or ``[N, C]`` scores with class indices for the one-vs-rest average
    (``"macro"``, ``"weighted"`` or ``None``); ``[N, 1]`` scores are binary. No positive targets gives 0 with a
    warning, as in scikit-learn.
    """
    scores, targets = _score_column_as_binary(scores, targets)
    if scores.dim() == 2:
        return _one_vs_rest(average_precision, scores, targets, average)
    precision_, recall_, _ = precision_recall_curve(scores, targets)
    # Recall falls along the returned curve, so -diff is each threshold's recall gain.
    return -(recall_.diff() * precision_[:-1]).sum()


# --- accumulators ---------------------------------------------------------------------------------------------------


class _ScoreCollector(Metric):
    """Keeps every batch's scores and targets: a ranking metric needs the whole sorted list, no running summary."""

    def __init__(self, average: str | None = "macro") -> None:
        check_choice(average, "average", _OVR_AVERAGES)
        self.average = average
        super().__init__()

    def reset(self) -> None:
        self.scores: list[Tensor] = []
        self.targets: list[Tensor] = []

    def update(self, scores: Tensor, targets: Tensor) -> None:
        scores, targets = check_tensor(scores, "scores"), check_tensor(targets, "targets")
        if scores.dim() == 0 or targets.shape != scores.shape[:1]:
            raise ValueError(
                f"expected [N] or [N, C] scores and [N] targets, got scores {list(scores.shape)} "
                f"and targets {list(targets.shape)}"
            )
        self.scores.append(scores.detach())
        self.targets.append(targets.detach())

    def _collected(self) -> tuple[Tensor, Tensor]:
        return torch.cat(self.scores), torch.cat(self.targets)  # not empty: Metric refuses compute before update


class ROCAUC(_ScoreCollector):
    """ROC AUC over every batch since the last reset (see :func:`roc_auc`)."""

    def compute(self) -> Tensor:
        return roc_auc(*self._collected(), average=self.average)


class AveragePrecision(_ScoreCollector):
    """Average precision over every batch since the last reset (see :func:`average_precision`)."""

    def compute(self) -> Tensor:
        return average_precision(*self._collected(), average=self.average)
