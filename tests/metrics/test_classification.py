"""zoo.metrics' labels and ranking against scikit-learn, on many random cases with heavy ties, plus edge cases."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from zoo.metrics import (
    ROCAUC,
    Accuracy,
    AveragePrecision,
    ConfusionMatrix,
    PrecisionRecallF1,
    accuracy,
    average_precision,
    confusion_matrix,
    f1_score,
    precision,
    precision_recall_curve,
    precision_recall_f1,
    recall,
    roc_auc,
    roc_auc_rank,
    roc_auc_trapezoid,
    roc_curve,
)

SEEDS = range(12)
TOL = 1e-6


def _scores(rng: np.random.Generator, n: int) -> np.ndarray:
    """Scores with many ties (a few distinct levels) or, one time in three, continuous ones."""
    if rng.random() < 1 / 3:
        return rng.normal(size=n)
    return rng.integers(0, rng.integers(2, 8), size=n) / 4.0


def _binary_targets(rng: np.random.Generator, n: int) -> np.ndarray:
    """0/1 targets holding both classes."""
    targets = (rng.random(n) < rng.uniform(0.1, 0.9)).astype(np.int64)
    targets[:2] = [0, 1]
    return rng.permutation(targets)


def _close(ours: torch.Tensor, expected, tol: float = TOL) -> None:
    np.testing.assert_allclose(ours.numpy(), np.asarray(expected, dtype=np.float64), rtol=0, atol=tol)


# --- confusion matrix, accuracy ------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:A single label was found")
@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matrix_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    num_classes, n = int(rng.integers(1, 7)), int(rng.integers(0, 60))
    targets, labels = rng.integers(0, num_classes, size=(2, n))
    expected = skm.confusion_matrix(targets, labels, labels=range(num_classes))
    ours = confusion_matrix(torch.from_numpy(labels), torch.from_numpy(targets), num_classes)
    assert ours.dtype == torch.int64
    np.testing.assert_array_equal(ours.numpy(), expected)
    logits = rng.normal(size=(n, num_classes)).astype(np.float32)
    expected = skm.confusion_matrix(targets, logits.argmax(1), labels=range(num_classes))
    np.testing.assert_array_equal(
        confusion_matrix(torch.from_numpy(logits), torch.from_numpy(targets), num_classes), expected
    )


def test_confusion_matrix_ignore_index_drops_those_targets():
    rng = np.random.default_rng(0)
    targets, labels = rng.integers(0, 4, size=(2, 200))
    targets[rng.random(200) < 0.3] = 255
    kept = targets != 255
    expected = skm.confusion_matrix(targets[kept], labels[kept], labels=range(4))
    ours = confusion_matrix(torch.from_numpy(labels), torch.from_numpy(targets), 4, ignore_index=255)
    np.testing.assert_array_equal(ours.numpy(), expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    num_classes, n = int(rng.integers(3, 8)), int(rng.integers(10, 80))
    targets = rng.integers(0, num_classes, size=n)
    targets[:3] = [0, 1, 2]  # three classes present, so sklearn sees a multiclass problem
    labels = rng.integers(0, num_classes, size=n)
    _close(accuracy(torch.from_numpy(labels), torch.from_numpy(targets)), skm.accuracy_score(targets, labels))
    # Integer scores in a small range: most rows have ties, which top_k_accuracy_score breaks by class index.
    scores = rng.integers(0, 3, size=(n, num_classes)).astype(np.float64)
    for k in range(1, num_classes + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)  # k >= C is a perfect score; sklearn warns
            expected = skm.top_k_accuracy_score(targets, scores, k=k, labels=range(num_classes))
        _close(accuracy(torch.from_numpy(scores), torch.from_numpy(targets), top_k=k), expected)


def test_top_1_accuracy_from_untied_logits_equals_argmax_accuracy():
    logits, targets = torch.randn(50, 6), torch.randint(0, 6, (50,))
    expected = skm.accuracy_score(targets.numpy(), logits.numpy().argmax(1))
    _close(accuracy(logits, targets), expected)


# --- precision / recall / F1 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("zero_division", [0.0, 1.0, math.nan])
@pytest.mark.parametrize("average", ["micro", "macro", "weighted", None])
def test_precision_recall_f1_matches_sklearn(average, zero_division):
    rng = np.random.default_rng(0)
    # Few samples over up to 7 classes: many classes are never predicted, never true, or both.
    cases = [rng.integers(0, int(rng.integers(2, 8)), size=(2, int(rng.integers(1, 15)))) for _ in range(8)]
    # Never predicting the true class: with zero_division=nan only zero-support classes keep a precision.
    cases.append(np.array([[0, 0, 0], [1, 1, 2]]))
    for targets, labels in cases:
        num_classes = max(3, int(targets.max(initial=0)), int(labels.max(initial=0))) + 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            expected = skm.precision_recall_fscore_support(
                targets, labels, labels=range(num_classes), average=average, zero_division=zero_division
            )[:3]
        ours = precision_recall_f1(
            torch.from_numpy(labels),
            torch.from_numpy(targets),
            num_classes=num_classes,
            average=average,
            zero_division=zero_division,
        )
        for value, reference in zip(ours, expected, strict=True):
            assert value.dtype == torch.float64
            np.testing.assert_allclose(value.numpy(), reference, rtol=0, atol=TOL)  # NaN == NaN here


@pytest.mark.parametrize("pos_label", [0, 1])
@pytest.mark.parametrize("zero_division", [0.0, 1.0])
def test_binary_precision_recall_f1_matches_sklearn(pos_label, zero_division):
    rng = np.random.default_rng(1)
    cases = [rng.integers(0, 2, size=(2, int(rng.integers(1, 30)))) for _ in range(10)]
    cases += [np.array([[0, 0, 0], [0, 0, 0]]), np.array([[1, 1, 0], [0, 0, 0]]), np.array([[0, 1], [1, 0]])]
    for targets, labels in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            expected = skm.precision_recall_fscore_support(
                targets, labels, labels=[0, 1], average="binary", pos_label=pos_label, zero_division=zero_division
            )[:3]
        ours = precision_recall_f1(
            torch.from_numpy(labels), torch.from_numpy(targets), pos_label=pos_label, zero_division=zero_division
        )
        _close(torch.stack(ours), expected)


def test_precision_recall_f1_shortcuts_and_logits_match_sklearn():
    logits, targets = torch.randn(40, 5), torch.randint(0, 5, (40,))
    labels = logits.numpy().argmax(1)
    for ours, reference in ((precision, skm.precision_score), (recall, skm.recall_score), (f1_score, skm.f1_score)):
        expected = reference(targets.numpy(), labels, labels=range(5), average="macro", zero_division=0)
        _close(ours(logits, targets, num_classes=5, average="macro"), expected)


# --- ROC ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_curve_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    scores, targets = _scores(rng, n), _binary_targets(rng, n)
    fpr, tpr, thresholds = skm.roc_curve(targets, scores, drop_intermediate=False)
    ours = roc_curve(torch.from_numpy(scores), torch.from_numpy(targets))
    _close(ours[0], fpr)
    _close(ours[1], tpr)
    np.testing.assert_array_equal(ours[2].numpy(), thresholds)  # +inf first, then the distinct scores


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_auc_both_forms_match_sklearn(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 300))
    scores, targets = _scores(rng, n), _binary_targets(rng, n)
    expected = skm.roc_auc_score(targets, scores)
    for form in (roc_auc_trapezoid, roc_auc_rank, roc_auc):
        _close(form(torch.from_numpy(scores), torch.from_numpy(targets)), expected)
    # float32 scores and boolean targets rank the same way.
    _close(roc_auc_rank(torch.from_numpy(scores).float(), torch.from_numpy(targets).bool()), expected)


def _pairwise_auc(scores: list, targets: list) -> float:
    """The definition, pair by pair: mean of [s+ > s-] + 0.5 [s+ == s-]."""
    positives = np.array([s for s, t in zip(scores, targets, strict=True) if t])[:, None]
    negatives = np.array([s for s, t in zip(scores, targets, strict=True) if not t])[None, :]
    return float(((positives > negatives) + 0.5 * (positives == negatives)).mean())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=40).filter(
        lambda pairs: 0 < sum(t for _, t in pairs) < len(pairs)
    )
)
def test_roc_auc_trapezoid_equals_rank_form_equals_pair_definition(pairs):
    scores, targets = zip(*pairs, strict=True)
    expected = _pairwise_auc(scores, targets)
    scores_t, targets_t = torch.tensor(scores, dtype=torch.float64) / 3, torch.tensor(targets)
    _close(roc_auc_trapezoid(scores_t, targets_t), expected, 1e-12)
    _close(roc_auc_rank(scores_t, targets_t), expected, 1e-12)


@pytest.mark.parametrize("average", ["macro", "weighted", None])
def test_one_vs_rest_roc_auc_matches_sklearn(average):
    for seed in range(6):
        rng = np.random.default_rng(seed)
        num_classes, n = int(rng.integers(3, 6)), int(rng.integers(20, 100))
        targets = rng.permutation(np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, n)]))
        # Rounded probabilities: rows still sum to 1 (sklearn checks that) and each column has ties.
        logits = rng.integers(0, 4, size=(targets.size, num_classes)).astype(np.float64)
        probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        expected = skm.roc_auc_score(targets, probabilities, multi_class="ovr", average=average)
        _close(roc_auc(torch.from_numpy(probabilities), torch.from_numpy(targets), average=average), expected)


# --- PR curve, average precision ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_precision_recall_curve_and_average_precision_match_sklearn(seed):
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(2, 150))
    scores, targets = _scores(rng, n), _binary_targets(rng, n)
    precision_, recall_, thresholds = skm.precision_recall_curve(targets, scores)
    ours = precision_recall_curve(torch.from_numpy(scores), torch.from_numpy(targets))
    _close(ours[0], precision_)
    _close(ours[1], recall_)
    np.testing.assert_array_equal(ours[2].numpy(), thresholds)
    expected = skm.average_precision_score(targets, scores)
    _close(average_precision(torch.from_numpy(scores), torch.from_numpy(targets)), expected)


@pytest.mark.parametrize("average", ["macro", "weighted", None])
def test_one_vs_rest_average_precision_matches_sklearn(average):
    for seed in range(6):
        rng = np.random.default_rng(seed)
        num_classes, n = int(rng.integers(3, 6)), int(rng.integers(20, 100))
        targets = rng.permutation(np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, n)]))
        scores = rng.integers(0, 4, size=(targets.size, num_classes)) / 3.0
        expected = skm.average_precision_score(targets, scores, average=average)
        _close(average_precision(torch.from_numpy(scores), torch.from_numpy(targets), average=average), expected)


def test_average_precision_hand_computed():
    # Descending scores: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-): AP = 0.5 * 1 + 0.5 * 2/3.
    scores, targets = torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])
    _close(average_precision(scores, targets), 0.5 + 0.5 * 2 / 3, 1e-7)
    # One tie between a positive and a negative at the top: they enter together at precision 1/2.
    _close(average_precision(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([1, 0, 1])), 0.5 * 0.5 + 0.5 * 2 / 3, 1e-12)


def test_no_positive_targets_follow_sklearn_with_a_warning():
    scores, targets = np.array([0.3, 0.1, 0.3, 0.9]), np.zeros(4, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_curve = skm.precision_recall_curve(targets, scores)
        expected_ap = skm.average_precision_score(targets, scores)
        expected_roc = skm.roc_curve(targets, scores, drop_intermediate=False)
    with pytest.warns(RuntimeWarning, match="no positive"):
        ours = precision_recall_curve(torch.from_numpy(scores), torch.from_numpy(targets))
    for value, reference in zip(ours, expected_curve, strict=True):
        _close(value, reference)
    with pytest.warns(RuntimeWarning, match="no positive"):
        _close(average_precision(torch.from_numpy(scores), torch.from_numpy(targets)), expected_ap)
    with pytest.warns(RuntimeWarning, match="no positive"):
        ours = roc_curve(torch.from_numpy(scores), torch.from_numpy(targets))
    for value, reference in zip(ours, expected_roc, strict=True):
        np.testing.assert_allclose(value.numpy(), reference)  # tpr is NaN in both


# --- errors and empty inputs -------------------------------------------------------------------------------------

_SCORES = torch.tensor([0.1, 0.5, 0.9])
_BINARY = torch.tensor([0, 1, 1])


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: roc_auc_rank(_SCORES, torch.ones(3)), ValueError, "one class"),
        (lambda: roc_auc_trapezoid(_SCORES, torch.zeros(3)), ValueError, "one class"),
        (lambda: roc_auc(torch.rand(4, 3), torch.tensor([0, 1, 1, 0])), ValueError, "class 2 never occurs"),
        (lambda: roc_auc_rank(_SCORES, torch.tensor([0, 1])), ValueError, "same length"),
        (lambda: roc_curve(_SCORES, torch.tensor([0, 2, 1])), ValueError, "binary targets.*got 2"),
        (lambda: average_precision(torch.tensor([0.1, math.nan, 0.3]), _BINARY), ValueError, "NaN at index \\[1\\]"),
        (lambda: roc_auc_rank(_SCORES.numpy(), _BINARY), TypeError, "torch.Tensor"),
        (lambda: roc_auc(torch.rand(3, 2), _BINARY, average="micro"), ValueError, "average"),
        (lambda: accuracy(torch.rand(3, 4), _BINARY, top_k=0), ValueError, "top_k"),
        (lambda: accuracy(_BINARY, _BINARY, top_k=2), ValueError, "needs \\[N, C\\] scores"),
        (lambda: accuracy(torch.rand(3, 4), torch.tensor([0, 4, 1])), ValueError, "got 4"),
        (lambda: accuracy(torch.rand(2, 4), _BINARY), ValueError, "shape"),
        (lambda: confusion_matrix(_BINARY, torch.tensor([0, 1, 5]), 3), ValueError, "\\[0, 3\\).*got 5"),
        (lambda: confusion_matrix(torch.tensor([0, -1, 1]), _BINARY, 3), ValueError, "preds.*got -1"),
        (lambda: confusion_matrix(_BINARY, _BINARY.float(), 3), TypeError, "integer"),
        (lambda: confusion_matrix(torch.rand(3, 4), _BINARY, 3), ValueError, "\\[3, 3\\]"),
        (lambda: confusion_matrix(_BINARY, _BINARY, 0), ValueError, "num_classes"),
        (lambda: precision_recall_f1(_BINARY, torch.tensor([0, 2, 1])), ValueError, "binary targets.*got 2"),
        (lambda: precision_recall_f1(_BINARY, _BINARY, average="macro"), ValueError, "num_classes"),
        (lambda: precision_recall_f1(_BINARY, _BINARY, average="samples"), ValueError, "average"),
        (lambda: precision_recall_f1(_BINARY, _BINARY, zero_division="warn"), ValueError, "zero_division"),
        (lambda: PrecisionRecallF1(3, average="binary"), ValueError, "two classes"),
        (lambda: ROCAUC().compute(), ValueError, "before any update"),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_empty_inputs_give_empty_results():
    empty_labels, empty_scores = torch.zeros(0, dtype=torch.int64), torch.zeros(0, 4)
    np.testing.assert_array_equal(confusion_matrix(empty_labels, empty_labels, 4).numpy(), np.zeros((4, 4)))
    np.testing.assert_array_equal(confusion_matrix(empty_scores, empty_labels, 4).numpy(), np.zeros((4, 4)))
    # Accuracy of nothing is refused, as scikit-learn refuses it (tests/metrics/test_bad_input.py).
    with pytest.raises(ValueError, match="empty batch"):
        accuracy(empty_scores, empty_labels, top_k=2)
    with pytest.raises(ValueError, match="before any update"):
        Accuracy().compute()
    with pytest.warns(RuntimeWarning):
        fpr, tpr, thresholds = roc_curve(torch.zeros(0), empty_labels)
    assert fpr.shape == tpr.shape == thresholds.shape == (1,) and thresholds[0] == math.inf


# --- accumulators --------------------------------------------------------------------------------------------------


def _chunks(*tensors: torch.Tensor, sizes=(7, 1, 0, 23, 40)):
    """The same split of each tensor into batches of uneven sizes (an empty one included)."""
    return zip(*(torch.split(t, list(sizes)) for t in tensors), strict=True)


@pytest.mark.parametrize("name", ["top2", "prf", "confusion", "auc", "auc_ovr", "ap"])
def test_accumulator_over_chunks_equals_sklearn_on_everything_and_reset_empties_it(name):
    rng = np.random.default_rng(5)
    targets = rng.permutation(np.concatenate([np.arange(4), np.arange(4), rng.integers(0, 4, 63)]))
    logits = rng.integers(0, 3, size=(71, 4)).astype(np.float64)
    binary = (targets == 2).astype(np.int64)
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    metric, preds, labels, reference = {
        "top2": (Accuracy(top_k=2), logits, targets, lambda p, t: skm.top_k_accuracy_score(t, p, k=2, labels=range(4))),
        "prf": (
            PrecisionRecallF1(4, average="weighted"),
            logits,
            targets,
            lambda p, t: skm.precision_recall_fscore_support(t, p.argmax(1), labels=range(4), average="weighted")[:3],
        ),
        "confusion": (ConfusionMatrix(4), logits, targets, lambda p, t: skm.confusion_matrix(t, p.argmax(1))),
        "auc": (ROCAUC(), logits[:, 2], binary, lambda p, t: skm.roc_auc_score(t, p)),
        "auc_ovr": (ROCAUC(), probabilities, targets, lambda p, t: skm.roc_auc_score(t, p, multi_class="ovr")),
        "ap": (AveragePrecision(), logits[:, 2], binary, lambda p, t: skm.average_precision_score(t, p)),
    }[name]

    def check(count: int) -> None:
        value = metric.compute()
        _close(
            torch.stack(value) if isinstance(value, tuple) else value.double(), reference(preds[:count], labels[:count])
        )

    for batch in _chunks(torch.from_numpy(preds), torch.from_numpy(labels)):
        metric.update(*batch)
    check(len(labels))
    metric.reset()
    metric.update(torch.from_numpy(preds[:30]), torch.from_numpy(labels[:30]))  # only this batch counts now
    check(30)
