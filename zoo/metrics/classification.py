"""Classification metrics: confusion matrix, top-k accuracy, precision / recall / F1, ROC and PR curves, AUC, AP.

Every function gives what its scikit-learn counterpart gives (named in each docstring); the tests check that.

    precision = TP / (TP + FP)        recall = TP / (TP + FN)        F1 = 2 TP / (2 TP + FP + FN)

    ROC AUC = P(s⁺ > s⁻) + ½ P(s⁺ = s⁻)  over all (positive, negative) pairs       (Mann–Whitney U / (P·N))
            = (Σ rank(s⁺) − P(P + 1)/2) / (P·N)  with tied scores sharing their average rank
            = ∫ TPR dFPR  by the trapezoid rule, one ROC point per distinct score  (Hanley & McNeil, 1982)

    AP = Σ_n (R_n − R_{n−1}) P_n  over the distinct scores, highest first (no interpolation)

Scores are ranked, so any monotone transform (logits, probabilities) gives the same curves. Rates, AUC and AP are
computed in float64, as scikit-learn does.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from zoo.metrics.base import Metric

__all__ = [
    "AVERAGES",
    "confusion_matrix",
    "accuracy",
    "precision_recall_f1",
    "precision",
    "recall",
    "f1_score",
    "roc_curve",
    "roc_auc_trapezoid",
    "roc_auc_rank",
    "roc_auc",
    "precision_recall_curve",
    "average_precision",
    "ConfusionMatrix",
    "Accuracy",
    "PrecisionRecallF1",
    "ROCAUC",
    "AveragePrecision",
]

# average= for precision / recall / F1, as in sklearn.metrics.precision_recall_fscore_support.
AVERAGES = ("binary", "micro", "macro", "weighted", None)
# average= for the one-vs-rest ranking metrics, as in sklearn.metrics.roc_auc_score(multi_class="ovr").
_OVR_AVERAGES = ("macro", "weighted", None)


# --- input checks ---------------------------------------------------------------------------------------------------


def _check_tensor(x: Any, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    return x


def _check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
    return num_classes


def _check_choice(value: Any, name: str, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {allowed}, got {value!r}")


def _check_scores(scores: Tensor, name: str) -> Tensor:
    """Real-valued scores without NaN, as floating point (integer scores are ranked like any others)."""
    if scores.is_complex():
        raise TypeError(f"{name}: expected real scores, got {scores.dtype}")
    if not scores.is_floating_point():
        return scores.double()
    nan = torch.isnan(scores)
    if nan.any():
        raise ValueError(f"{name}: expected scores without NaN, got NaN at index {nan.nonzero()[0].tolist()}")
    return scores


def _check_class_indices(labels: Tensor, name: str, num_classes: int, ignore_index: int | None = None) -> Tensor:
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


def _check_binary(targets: Tensor, name: str) -> Tensor:
    """0/1 (or boolean) targets as a boolean "is positive" mask."""
    binary = (targets == 0) | (targets == 1)
    if not binary.all():
        raise ValueError(
            f"{name}: expected binary targets (0 or 1), got {targets[~binary][0].item()}; "
            "for more classes pass [N, C] scores or average='macro' with num_classes"
        )
    return targets == 1


def _check_ignore_index(ignore_index: Any) -> None:
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"ignore_index: expected an int or None, got {ignore_index!r}")


def _holds_scores(preds: Tensor, targets: Tensor, num_classes: int | None = None) -> bool:
    """True for scores with the classes on dim 1 (``[N, C, ...]``), False for class indices shaped like
    ``targets``; any other shape is a ``ValueError``."""
    if targets.dim() == 0:
        raise ValueError("targets: expected at least one dimension (the samples), got a 0-dim tensor")
    if preds.dim() == targets.dim() + 1:
        classes = preds.shape[1] if num_classes is None else num_classes
        expected = (targets.shape[0], classes, *targets.shape[1:])
        if tuple(preds.shape) != expected:
            raise ValueError(f"preds: expected scores of shape {list(expected)}, got {list(preds.shape)}")
        return True
    if preds.shape != targets.shape:
        raise ValueError(
            f"preds: expected class indices shaped like targets {list(targets.shape)} or scores with the classes "
            f"on dim 1, got {list(preds.shape)}"
        )
    return False


def _binary_inputs(scores: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Validated ``(scores, is_positive)`` for the binary ranking metrics."""
    scores, targets = _check_tensor(scores, "scores"), _check_tensor(targets, "targets")
    if scores.dim() != 1 or targets.shape != scores.shape:
        raise ValueError(
            f"expected 1-D scores and targets of the same length, got scores {list(scores.shape)} "
            f"and targets {list(targets.shape)}"
        )
    return _check_scores(scores, "scores"), _check_binary(targets, "targets")


def _check_both_classes(positive: Tensor) -> int:
    """Number of positives; ROC AUC needs at least one positive and one negative."""
    num_positive = int(positive.sum())
    if num_positive in (0, positive.numel()):
        raise ValueError(
            f"ROC AUC is undefined with one class only: targets hold {num_positive} positives out of "
            f"{positive.numel()} (scikit-learn warns and returns NaN here)"
        )
    return num_positive


# --- confusion matrix, accuracy, precision / recall / F1 ------------------------------------------------------------


def confusion_matrix(preds: Tensor, targets: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """``[C, C]`` int64 counts, row = true class, column = predicted class (``sklearn.metrics.confusion_matrix``
    with ``labels=range(C)``).

    ``targets`` holds class indices of any shape (``[N]`` labels, ``[N, H, W]`` label maps); ``preds`` holds class
    indices of the same shape or scores with the classes on dim 1 (``[N, C]``, ``[N, C, H, W]``), reduced by argmax.
    Elements whose target equals ``ignore_index`` are left out. Any other target outside ``[0, C)`` is a
    ``ValueError`` naming the value.
    """
    preds, targets = _check_tensor(preds, "preds"), _check_tensor(targets, "targets")
    num_classes = _check_num_classes(num_classes)
    _check_ignore_index(ignore_index)
    targets = _check_class_indices(targets, "targets", num_classes, ignore_index)
    labels = _check_scores(preds, "preds").argmax(1) if _holds_scores(preds, targets, num_classes) else preds
    if ignore_index is not None:
        kept = targets != ignore_index
        targets, labels = targets[kept], labels[kept]
    labels = _check_class_indices(labels, "preds", num_classes)
    # One bincount over the cell index true * C + predicted counts every cell at once.
    cells = targets.reshape(-1) * num_classes + labels.reshape(-1)
    return torch.bincount(cells, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _check_top_k(top_k: Any) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k: expected a positive int, got {top_k!r}")
    return top_k


def _top_k_hits(preds: Tensor, targets: Tensor, top_k: int) -> Tensor:
    """Boolean hit per sample: the target is among the ``top_k`` highest-scored classes."""
    preds, targets = _check_tensor(preds, "preds"), _check_tensor(targets, "targets")
    top_k = _check_top_k(top_k)
    if not _holds_scores(preds, targets):
        if top_k != 1:
            raise ValueError(f"top_k={top_k} needs [N, C] scores, got class indices of shape {list(preds.shape)}")
        return preds == targets
    scores = _check_scores(preds, "preds")
    targets = _check_class_indices(targets, "targets", scores.shape[1]).unsqueeze(1)
    target_scores = scores.gather(1, targets)
    classes = torch.arange(scores.shape[1], device=scores.device).view(1, -1, *[1] * (scores.dim() - 2))
    # Ties are ranked as scikit-learn's top_k_accuracy_score ranks them (a stable ascending sort read backwards):
    # of two equal scores, the higher class index counts as the higher rank.
    outranking = (scores > target_scores) | ((scores == target_scores) & (classes > targets))
    return outranking.sum(1) < top_k


def accuracy(preds: Tensor, targets: Tensor, *, top_k: int = 1) -> Tensor:
    """Fraction of samples whose target is among the ``top_k`` best-scored classes (float64 scalar, NaN if empty).

    ``preds`` is ``[N]`` class indices (``sklearn.metrics.accuracy_score``) or ``[N, C]`` scores
    (``sklearn.metrics.top_k_accuracy_score`` with ``labels=range(C)``, whose tie rule is followed: of two equal
    scores the higher class index ranks first).
    """
    return _top_k_hits(preds, targets, top_k).double().mean()


def _check_zero_division(zero_division: Any) -> float:
    valid = isinstance(zero_division, (int, float)) and not isinstance(zero_division, bool)
    if not valid or not (zero_division in (0, 1) or math.isnan(zero_division)):
        raise ValueError(f"zero_division: expected 0, 1 or float('nan'), got {zero_division!r}")
    return float(zero_division)


def _divide(numerator: Tensor, denominator: Tensor, zero_division: float) -> Tensor:
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return torch.where(denominator > 0, numerator / safe, torch.full_like(numerator, zero_division))


def _nan_average(values: Tensor, weights: Tensor | None) -> Tensor:
    """scikit-learn's averaging: NaN entries (``zero_division=nan``) drop out; all-zero weights mean no weights."""
    kept = ~values.isnan()
    if not kept.any():
        return values.new_tensor(math.nan)
    values = values[kept]
    if weights is None or not (weights[kept] > 0).any():
        return values.mean()
    weights = weights[kept]
    return (values * weights).sum() / weights.sum()


def _precision_recall_f1_from_confusion(
    confusion: Tensor, average: str | None, pos_label: int, zero_division: float
) -> tuple[Tensor, Tensor, Tensor]:
    confusion = confusion.double()
    true_positives, predicted, actual = confusion.diagonal(), confusion.sum(0), confusion.sum(1)
    support = actual
    if average == "binary":
        true_positives, predicted, actual = (x[pos_label : pos_label + 1] for x in (true_positives, predicted, actual))
    elif average == "micro":
        true_positives, predicted, actual = (x.sum(0, keepdim=True) for x in (true_positives, predicted, actual))
    scores = (
        _divide(true_positives, predicted, zero_division),
        _divide(true_positives, actual, zero_division),
        # 2 TP / (2 TP + FP + FN): defined whenever the class was predicted or present, even if P or R was not.
        _divide(2 * true_positives, predicted + actual, zero_division),
    )
    if average is None:
        return scores
    weights = support if average == "weighted" else None
    precision_, recall_, f1_ = (_nan_average(score, weights) for score in scores)
    return precision_, recall_, f1_


def _check_prf_options(num_classes: Any, average: Any, pos_label: Any, zero_division: Any) -> int:
    """Validate the precision / recall / F1 options; return the number of classes."""
    _check_choice(average, "average", AVERAGES)
    _check_zero_division(zero_division)
    if average != "binary":
        if num_classes is None:
            raise ValueError(f"num_classes: required for average={average!r}")
        return _check_num_classes(num_classes)
    if num_classes not in (None, 2):
        raise ValueError(f"average='binary' is for two classes, got num_classes={num_classes!r}")
    _check_choice(pos_label, "pos_label", (0, 1))
    return 2


def precision_recall_f1(
    preds: Tensor,
    targets: Tensor,
    *,
    num_classes: int | None = None,
    average: str | None = "binary",
    pos_label: int = 1,
    zero_division: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(precision, recall, F1)`` as ``sklearn.metrics.precision_recall_fscore_support`` with ``labels=range(C)``.

    ``preds`` is class indices shaped like ``targets`` or ``[N, C]`` scores (argmax). ``average``: ``"binary"``
    (0/1 targets, the scores of class ``pos_label``), ``"micro"`` (pooled counts), ``"macro"`` (unweighted mean over
    the C classes, absent ones included), ``"weighted"`` (mean weighted by each class's true count) or ``None``
    (``[C]`` per class). A 0/0 ratio takes ``zero_division``: 0 is scikit-learn's default ``"warn"`` value (no
    warning is raised here), NaN drops the class from the averages. Results are float64.
    """
    num_classes = _check_prf_options(num_classes, average, pos_label, zero_division)
    if average == "binary":
        _check_binary(_check_tensor(targets, "targets"), "targets")
    confusion = confusion_matrix(preds, targets, num_classes)
    return _precision_recall_f1_from_confusion(confusion, average, pos_label, float(zero_division))


def precision(preds: Tensor, targets: Tensor, **options: Any) -> Tensor:
    """TP / (TP + FP); options as :func:`precision_recall_f1` (``sklearn.metrics.precision_score``)."""
    return precision_recall_f1(preds, targets, **options)[0]


def recall(preds: Tensor, targets: Tensor, **options: Any) -> Tensor:
    """TP / (TP + FN); options as :func:`precision_recall_f1` (``sklearn.metrics.recall_score``)."""
    return precision_recall_f1(preds, targets, **options)[1]


def f1_score(preds: Tensor, targets: Tensor, **options: Any) -> Tensor:
    """2 TP / (2 TP + FP + FN); options as :func:`precision_recall_f1` (``sklearn.metrics.f1_score``)."""
    return precision_recall_f1(preds, targets, **options)[2]


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
    _check_choice(average, "average", _OVR_AVERAGES)
    _check_tensor(targets, "targets")
    if scores.dim() != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(
            f"expected [N, C] scores and [N] class indices, got scores {list(scores.shape)} and "
            f"targets {list(targets.shape)}"
        )
    num_classes = scores.shape[1]
    support = torch.bincount(_check_class_indices(targets, "targets", num_classes), minlength=num_classes)
    if every_class and (support == 0).any():
        absent = int((support == 0).nonzero()[0])
        raise ValueError(f"one-vs-rest needs every class in targets; class {absent} never occurs")
    # Each class needs its own sort of its own score column, so this loops over the C classes.
    per_class = torch.stack([binary_metric(scores[:, c], targets == c) for c in range(num_classes)])
    if average is None:
        return per_class
    return _nan_average(per_class, support.double() if average == "weighted" else None)


def roc_auc(scores: Tensor, targets: Tensor, *, average: str | None = "macro") -> Tensor:
    """ROC AUC (rank form): binary for ``[N]`` scores, one-vs-rest for ``[N, C]`` scores and ``[N]`` class indices.

    The multiclass form equals ``sklearn.metrics.roc_auc_score(multi_class="ovr", average=average)``
    (``"macro"``, ``"weighted"`` by class frequency, or ``None`` for the ``[C]`` per-class AUCs); unlike scikit-learn
    it does not require the rows to sum to one. Every class must occur in ``targets``.
    """
    if _check_tensor(scores, "scores").dim() != 2:
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
    (``"macro"``, ``"weighted"`` or ``None``). No positive targets gives 0 with a warning, as in scikit-learn.
    """
    scores = _check_tensor(scores, "scores")
    if scores.dim() == 2:
        return _one_vs_rest(average_precision, scores, targets, average)
    precision_, recall_, _ = precision_recall_curve(scores, targets)
    # Recall falls along the returned curve, so -diff is each threshold's recall gain.
    return -(recall_.diff() * precision_[:-1]).sum()


# --- accumulators ---------------------------------------------------------------------------------------------------


class ConfusionMatrix(Metric):
    """Running ``[C, C]`` confusion matrix (see :func:`confusion_matrix`); its counts are all a batch leaves behind."""

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        self.num_classes = _check_num_classes(num_classes)
        _check_ignore_index(ignore_index)
        self.ignore_index = ignore_index
        super().__init__()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    def update(self, preds: Tensor, targets: Tensor) -> None:
        batch = confusion_matrix(preds, targets, self.num_classes, self.ignore_index)
        self.confusion = self.confusion.to(batch.device) + batch

    def compute(self) -> Tensor:
        return self.confusion.clone()


class Accuracy(Metric):
    """Running top-k accuracy (see :func:`accuracy`); NaN before the first sample."""

    def __init__(self, top_k: int = 1) -> None:
        self.top_k = _check_top_k(top_k)
        super().__init__()

    def reset(self) -> None:
        # Tensors, not Python ints, so that an update on the GPU does not wait for the device.
        self.correct = torch.zeros((), dtype=torch.int64)
        self.total = torch.zeros((), dtype=torch.int64)

    def update(self, preds: Tensor, targets: Tensor) -> None:
        hits = _top_k_hits(preds, targets, self.top_k)
        self.correct = self.correct.to(hits.device) + hits.sum()
        self.total = self.total.to(hits.device) + hits.numel()

    def compute(self) -> Tensor:
        return self.correct.double() / self.total


class PrecisionRecallF1(ConfusionMatrix):
    """Running ``(precision, recall, F1)`` from an accumulated confusion matrix (see :func:`precision_recall_f1`)."""

    def __init__(
        self, num_classes: int, average: str | None = "macro", pos_label: int = 1, zero_division: float = 0.0
    ) -> None:
        _check_prf_options(num_classes, average, pos_label, zero_division)
        self.average, self.pos_label, self.zero_division = average, pos_label, float(zero_division)
        super().__init__(num_classes)

    def compute(self) -> tuple[Tensor, Tensor, Tensor]:
        return _precision_recall_f1_from_confusion(self.confusion, self.average, self.pos_label, self.zero_division)


class _ScoreCollector(Metric):
    """Keeps every batch's scores and targets: a ranking metric needs the whole sorted list, no running summary."""

    def __init__(self, average: str | None = "macro") -> None:
        _check_choice(average, "average", _OVR_AVERAGES)
        self.average = average
        super().__init__()

    def reset(self) -> None:
        self.scores: list[Tensor] = []
        self.targets: list[Tensor] = []

    def update(self, scores: Tensor, targets: Tensor) -> None:
        scores, targets = _check_tensor(scores, "scores"), _check_tensor(targets, "targets")
        if scores.dim() == 0 or targets.shape != scores.shape[:1]:
            raise ValueError(
                f"expected [N] or [N, C] scores and [N] targets, got scores {list(scores.shape)} "
                f"and targets {list(targets.shape)}"
            )
        self.scores.append(scores.detach())
        self.targets.append(targets.detach())

    def _collected(self) -> tuple[Tensor, Tensor]:
        if not self.scores:
            raise ValueError(f"{type(self).__name__}.compute: no batch since the last reset")
        return torch.cat(self.scores), torch.cat(self.targets)


class ROCAUC(_ScoreCollector):
    """ROC AUC over every batch since the last reset (see :func:`roc_auc`)."""

    def compute(self) -> Tensor:
        return roc_auc(*self._collected(), average=self.average)


class AveragePrecision(_ScoreCollector):
    """Average precision over every batch since the last reset (see :func:`average_precision`)."""

    def compute(self) -> Tensor:
        return average_precision(*self._collected(), average=self.average)
