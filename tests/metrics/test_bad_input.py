"""Bad input to the metrics, as a user would hit it (issue 15): a clear error naming what was expected and what
came, or the right answer (scikit-learn's) — never a silent NaN or an impossible value."""

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
import torch

from zoo.metrics import (
    ROCAUC,
    Accuracy,
    AveragePrecision,
    ConfusionMatrix,
    MeanAveragePrecision,
    Metric,
    PrecisionRecallF1,
    SegmentationMetrics,
    accuracy,
    average_precision,
    roc_auc,
    voc_average_precision,
)

# --- PASCAL VOC AP of a curve that is no precision / recall curve -------------------------------------------------


@pytest.mark.parametrize(
    "recall, precision, message",
    [
        ([0.5, 1.0, 3.0], [1.0, 1.0, 1.0], r"recall: expected values in \[0, 1\], got 3.0 at index 2"),
        ([0.5, 1.0], [1.0, 1.5], r"precision: expected values in \[0, 1\], got 1.5 at index 1"),
        ([-0.1, 0.5], [1.0, 1.0], r"recall: .*got -0.1"),
        ([0.5, float("nan")], [1.0, 1.0], r"recall: .*got nan at index 1"),
        ([1.0, 0.5, 0.0], [0.5, 0.7, 1.0], "non-decreasing.*flip"),  # scikit-learn's curve order, not the ranking's
    ],
)
@pytest.mark.parametrize("use_07_metric", [False, True])
def test_voc_ap_refuses_values_outside_the_unit_interval(recall, precision, message, use_07_metric):
    recall, precision = torch.tensor(recall, dtype=torch.float64), torch.tensor(precision, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        voc_average_precision(recall, precision, use_07_metric)


def test_voc_ap_of_a_valid_curve_is_the_closed_form():
    # One positive found at rank 2 of 2: recall 0, 1; precision 0, 1/2. All-point AP = (1 - 0) * 1/2.
    recall, precision = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.5])
    assert voc_average_precision(recall, precision).item() == pytest.approx(0.5)
    # Every 11-point threshold is reached at precision 1/2 or more only at recall 1: (11 * 1/2) / 11.
    assert voc_average_precision(recall, precision, use_07_metric=True).item() == pytest.approx(0.5)


# --- accuracy: top_k beyond the classes, empty batches ---------------------------------------------------------


def test_top_k_above_the_number_of_classes_is_refused():
    scores, targets = torch.rand(4, 3), torch.tensor([0, 1, 2, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert skm.top_k_accuracy_score(targets.numpy(), scores.numpy(), k=5, labels=range(3)) == 1.0
    assert any("meaningless" in str(w.message) for w in caught)  # scikit-learn's verdict on the 1.0 it returns
    with pytest.raises(ValueError, match=r"top_k=5 is more than the number of classes, 3"):
        accuracy(scores, targets, top_k=5)
    metric = Accuracy(top_k=5)
    with pytest.raises(ValueError, match=r"top_k=5 .* 3"):
        metric.update(scores, targets)


def test_top_k_up_to_the_number_of_classes_equals_sklearn():
    generator = torch.Generator().manual_seed(0)
    scores, targets = torch.rand(40, 3, generator=generator), torch.randint(0, 3, (40,), generator=generator)
    for k in (1, 2, 3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # k = 3 of 3 classes: scikit-learn warns, the value is still 1
            expected = skm.top_k_accuracy_score(targets.numpy(), scores.numpy(), k=k, labels=range(3))
        assert accuracy(scores, targets, top_k=k).item() == pytest.approx(expected)


@pytest.mark.parametrize("preds", [torch.zeros(0, dtype=torch.int64), torch.zeros(0, 4)])
def test_accuracy_of_an_empty_batch_is_refused(preds):
    with pytest.raises(ValueError, match="sample"):  # scikit-learn: "Found array with 0 sample(s)"
        skm.accuracy_score(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="accuracy of an empty batch"):
        accuracy(preds, torch.zeros(0, dtype=torch.int64))


def test_accuracy_accumulator_of_empty_batches_only_is_refused():
    metric = Accuracy()
    metric.update(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ValueError, match="every batch since the last reset\\(\\) was empty"):
        metric.compute()
    metric.update(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([1, 1]))
    assert metric.compute().item() == skm.accuracy_score([1, 1], [1, 0])


# --- compute() before any update(), for every accumulator -------------------------------------------------------

ACCUMULATORS = {
    "ConfusionMatrix": (lambda: ConfusionMatrix(3), (torch.tensor([0, 1]), torch.tensor([0, 2]))),
    "Accuracy": (Accuracy, (torch.tensor([0, 1]), torch.tensor([0, 2]))),
    "PrecisionRecallF1": (lambda: PrecisionRecallF1(3), (torch.tensor([0, 1]), torch.tensor([0, 2]))),
    "SegmentationMetrics": (lambda: SegmentationMetrics(3), (torch.zeros(1, 2, 2).long(), torch.zeros(1, 2, 2).long())),
    "ROCAUC": (ROCAUC, (torch.tensor([0.2, 0.7]), torch.tensor([0, 1]))),
    "AveragePrecision": (AveragePrecision, (torch.tensor([0.2, 0.7]), torch.tensor([0, 1]))),
    "MeanAveragePrecision": (
        MeanAveragePrecision,
        (
            [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}],
            [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1])}],
        ),
    ),
}


def _every_metric_class(cls=Metric):
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("zoo.") and not sub.__name__.startswith("_"):
            yield sub.__name__
        yield from _every_metric_class(sub)


def test_every_accumulator_is_listed():
    # A new accumulator must join ACCUMULATORS, so that its compute() before update() is tested too.
    assert set(_every_metric_class()) == set(ACCUMULATORS)


@pytest.mark.parametrize("name", sorted(ACCUMULATORS))
def test_compute_before_any_update_is_refused(name):
    build, batch = ACCUMULATORS[name]
    metric = build()
    with pytest.raises(ValueError, match=rf"{name}\.compute\(\) called before any update\(\)"):
        metric.compute()
    metric.update(*batch)
    metric.compute()  # a value once a batch came
    metric.reset()
    with pytest.raises(ValueError, match="before any update"):
        metric.compute()
    with pytest.raises((TypeError, ValueError)):
        metric.update("not a batch", "not a batch")
    with pytest.raises(ValueError, match="before any update"):  # a refused batch does not count as one
        metric.compute()


# --- ROC AUC and AP of a sigmoid head's [N, 1] column --------------------------------------------------------------


def test_an_n_by_1_score_column_is_binary_as_in_sklearn():
    generator = torch.Generator().manual_seed(3)
    scores = torch.rand(30, 1, generator=generator)
    targets = (torch.rand(30, generator=generator) < scores[:, 0]).long()
    expected_auc = skm.roc_auc_score(targets.numpy(), scores.numpy().ravel())
    expected_ap = skm.average_precision_score(targets.numpy(), scores.numpy().ravel())
    assert roc_auc(scores, targets).item() == pytest.approx(expected_auc, abs=1e-12)
    assert roc_auc(scores, targets[:, None]).item() == pytest.approx(expected_auc, abs=1e-12)
    assert average_precision(scores, targets).item() == pytest.approx(expected_ap, abs=1e-12)
    metric = ROCAUC()
    metric.update(scores[:10], targets[:10])
    metric.update(scores[10:], targets[10:])
    assert metric.compute().item() == pytest.approx(expected_auc, abs=1e-12)
