"""Label-based classification metrics: confusion matrix, accuracy (top-k), precision / recall / F1; accumulators.

Every function gives what its scikit-learn counterpart gives (named in each docstring); the tests check that.

    precision = TP / (TP + FP)        recall = TP / (TP + FN)        F1 = 2 TP / (2 TP + FP + FN)

counted from one ``[C, C]`` confusion matrix (a single bincount). Predictions are class indices, or scores with the
classes on dim 1, reduced by argmax (or, for top-k accuracy, ranked). Ratios are float64. The score-based metrics
(ROC, AUC, PR curve, AP) are :mod:`zoo.metrics.ranking`.
"""

from __future__ import annotations

import math
from typing import Any

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
    "AVERAGES",
    "confusion_matrix",
    "accuracy",
    "precision_recall_f1",
    "precision",
    "recall",
    "f1_score",
    "ConfusionMatrix",
    "Accuracy",
    "PrecisionRecallF1",
]

# average= for precision / recall / F1, as in sklearn.metrics.precision_recall_fscore_support.
AVERAGES = ("binary", "micro", "macro", "weighted", None)


# --- input checks ---------------------------------------------------------------------------------------------------


def _check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
    return num_classes


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


# --- confusion matrix, accuracy, precision / recall / F1 ------------------------------------------------------------


def confusion_matrix(preds: Tensor, targets: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """``[C, C]`` int64 counts, row = true class, column = predicted class (``sklearn.metrics.confusion_matrix``
    with ``labels=range(C)``).

    ``targets`` holds class indices of any shape (``[N]`` labels, ``[N, H, W]`` label maps); ``preds`` holds class
    indices of the same shape or scores with the classes on dim 1 (``[N, C]``, ``[N, C, H, W]``), reduced by argmax.
    Elements whose target equals ``ignore_index`` are left out. Any other target outside ``[0, C)`` is a
    ``ValueError`` naming the value.
    """
    preds, targets = check_tensor(preds, "preds"), check_tensor(targets, "targets")
    num_classes = _check_num_classes(num_classes)
    _check_ignore_index(ignore_index)
    targets = check_class_indices(targets, "targets", num_classes, ignore_index)
    labels = check_scores(preds, "preds").argmax(1) if _holds_scores(preds, targets, num_classes) else preds
    if ignore_index is not None:
        kept = targets != ignore_index
        targets, labels = targets[kept], labels[kept]
    labels = check_class_indices(labels, "preds", num_classes)
    # One bincount over the cell index true * C + predicted counts every cell at once.
    cells = targets.reshape(-1) * num_classes + labels.reshape(-1)
    return torch.bincount(cells, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _check_top_k(top_k: Any) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k: expected a positive int, got {top_k!r}")
    return top_k


def _top_k_hits(preds: Tensor, targets: Tensor, top_k: int) -> Tensor:
    """Boolean hit per sample: the target is among the ``top_k`` highest-scored classes."""
    preds, targets = check_tensor(preds, "preds"), check_tensor(targets, "targets")
    top_k = _check_top_k(top_k)
    if not _holds_scores(preds, targets):
        if top_k != 1:
            raise ValueError(f"top_k={top_k} needs [N, C] scores, got class indices of shape {list(preds.shape)}")
        return preds == targets
    scores = check_scores(preds, "preds")
    if top_k > scores.shape[1]:
        raise ValueError(
            f"top_k={top_k} is more than the number of classes, {scores.shape[1]} (preds of shape "
            f"{list(scores.shape)}): every sample would count as a hit"
        )
    targets = check_class_indices(targets, "targets", scores.shape[1]).unsqueeze(1)
    target_scores = scores.gather(1, targets)
    classes = torch.arange(scores.shape[1], device=scores.device).view(1, -1, *[1] * (scores.dim() - 2))
    # Ties are ranked as scikit-learn's top_k_accuracy_score ranks them (a stable ascending sort read backwards):
    # of two equal scores, the higher class index counts as the higher rank.
    outranking = (scores > target_scores) | ((scores == target_scores) & (classes > targets))
    return outranking.sum(1) < top_k


def accuracy(preds: Tensor, targets: Tensor, *, top_k: int = 1) -> Tensor:
    """Fraction of samples whose target is among the ``top_k`` best-scored classes (float64 scalar).

    ``preds`` is ``[N]`` class indices (``sklearn.metrics.accuracy_score``) or ``[N, C]`` scores
    (``sklearn.metrics.top_k_accuracy_score`` with ``labels=range(C)``, whose tie rule is followed: of two equal
    scores the higher class index ranks first). An empty batch and ``top_k > C`` are a ``ValueError``
    (scikit-learn refuses the first and warns of a meaningless perfect score for the second).
    """
    hits = _top_k_hits(preds, targets, top_k)
    if hits.numel() == 0:
        raise ValueError(
            f"accuracy of an empty batch: preds {list(preds.shape)} and targets {list(targets.shape)} hold no samples"
        )
    return hits.double().mean()


def _check_zero_division(zero_division: Any) -> float:
    valid = isinstance(zero_division, (int, float)) and not isinstance(zero_division, bool)
    if not valid or not (zero_division in (0, 1) or math.isnan(zero_division)):
        raise ValueError(f"zero_division: expected 0, 1 or float('nan'), got {zero_division!r}")
    return float(zero_division)


def _divide(numerator: Tensor, denominator: Tensor, zero_division: float) -> Tensor:
    safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return torch.where(denominator > 0, numerator / safe, torch.full_like(numerator, zero_division))


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
    precision_, recall_, f1_ = (nan_average(score, weights) for score in scores)
    return precision_, recall_, f1_


def _check_prf_options(num_classes: Any, average: Any, pos_label: Any, zero_division: Any) -> int:
    """Validate the precision / recall / F1 options; return the number of classes."""
    check_choice(average, "average", AVERAGES)
    _check_zero_division(zero_division)
    if average != "binary":
        if num_classes is None:
            raise ValueError(f"num_classes: required for average={average!r}")
        return _check_num_classes(num_classes)
    if num_classes not in (None, 2):
        raise ValueError(f"average='binary' is for two classes, got num_classes={num_classes!r}")
    check_choice(pos_label, "pos_label", (0, 1))
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
        check_binary(check_tensor(targets, "targets"), "targets")
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
    """Running top-k accuracy (see :func:`accuracy`); ``compute`` with no sample since the last ``reset`` (no
    update, or only empty batches) is a ``ValueError``."""

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
        if self.total == 0:
            raise ValueError("Accuracy.compute(): every batch since the last reset() was empty, no sample to score")
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
