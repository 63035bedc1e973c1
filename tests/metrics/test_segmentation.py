"""zoo.metrics.segmentation against torchmetrics and scikit-learn on random label maps with absent classes."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_jaccard_index
from torchmetrics.functional.segmentation import dice_score

from zoo.metrics.segmentation import (
    SegmentationMetrics,
    confusion_matrix,
    dice_per_class,
    iou_per_class,
    mean_dice,
    mean_iou,
    pixel_accuracy,
)

TOL = 1e-6


def _case(seed: int, ignore_index: int | None = 255):
    """Small label maps over up to 6 classes (so some classes are missing from prediction, target or both), with
    about a fifth of the targets set to ``ignore_index``; ``preds`` are logits one time in two."""
    generator = torch.Generator().manual_seed(seed)
    num_classes = int(torch.randint(2, 7, (), generator=generator))
    n, h, w = (int(v) for v in torch.randint(1, 5, (3,), generator=generator))
    # Draw from the lower classes only, so the top ones are often absent from both.
    present = int(torch.randint(1, num_classes + 1, (), generator=generator))
    targets = torch.randint(0, present, (n, h, w), generator=generator)
    if ignore_index is not None:
        targets[torch.rand(n, h, w, generator=generator) < 0.2] = ignore_index
    labels = torch.randint(0, present, (n, h, w), generator=generator)
    if seed % 2:
        return labels, labels, targets, num_classes
    logits = torch.randn(n, num_classes, h, w, generator=generator)
    return logits, logits.argmax(1), targets, num_classes


def _close(ours: torch.Tensor, expected, tol: float = TOL) -> None:
    np.testing.assert_allclose(ours.numpy(), np.asarray(expected, dtype=np.float64), rtol=0, atol=tol)


def _absent_from_both(labels: torch.Tensor, targets: torch.Tensor, num_classes: int) -> np.ndarray:
    classes = np.arange(num_classes)
    return ~np.isin(classes, labels.numpy()) & ~np.isin(classes, targets.numpy())


@pytest.mark.parametrize("seed", range(12))
def test_confusion_matrix_matches_sklearn_on_kept_pixels(seed):
    preds, labels, targets, num_classes = _case(seed)
    kept = targets != 255
    expected = skm.confusion_matrix(targets[kept].numpy(), labels[kept].numpy(), labels=range(num_classes))
    np.testing.assert_array_equal(confusion_matrix(preds, targets, num_classes, ignore_index=255).numpy(), expected)


@pytest.mark.parametrize("seed", range(12))
def test_iou_and_pixel_accuracy_match_torchmetrics(seed):
    preds, labels, targets, num_classes = _case(seed)
    per_class = iou_per_class(preds, targets, num_classes, ignore_index=255)
    # torchmetrics writes zero_division where we write NaN: a class absent from both prediction and target.
    absent = _absent_from_both(labels[targets != 255], targets[targets != 255], num_classes)
    np.testing.assert_array_equal(per_class.isnan().numpy(), absent)
    expected = multiclass_jaccard_index(labels, targets, num_classes, average="none", ignore_index=255)
    _close(per_class.nan_to_num(0.0), expected)
    expected = multiclass_jaccard_index(labels, targets, num_classes, average="macro", ignore_index=255)
    _close(mean_iou(preds, targets, num_classes, ignore_index=255), expected)
    expected = multiclass_accuracy(labels, targets, num_classes, average="micro", ignore_index=255)
    _close(pixel_accuracy(preds, targets, num_classes, ignore_index=255), expected)


@pytest.mark.parametrize("seed", range(6))
def test_ignore_index_that_is_a_class_matches_torchmetrics_macro(seed):
    preds, labels, targets, num_classes = _case(seed, ignore_index=None)
    ignored = int(targets.flatten()[0])
    targets.view(-1)[-1] = (ignored + 1) % num_classes  # keep a pixel (all ignored is NaN here, 0 in torchmetrics)
    expected = multiclass_jaccard_index(labels, targets, num_classes, average="macro", ignore_index=ignored)
    _close(mean_iou(preds, targets, num_classes, ignore_index=ignored), expected)
    assert iou_per_class(preds, targets, num_classes, ignore_index=ignored)[ignored].isnan()
    expected = multiclass_accuracy(labels, targets, num_classes, average="micro", ignore_index=ignored)
    _close(pixel_accuracy(preds, targets, num_classes, ignore_index=ignored), expected)


@pytest.mark.parametrize("seed", range(12))
def test_dice_matches_torchmetrics_without_ignore_index(seed):
    preds, labels, targets, num_classes = _case(seed, ignore_index=None)
    options = {"num_classes": num_classes, "input_format": "index", "aggregation_level": "global"}
    expected = dice_score(labels, targets, average="none", **options)[0]  # NaN for a class absent from both
    _close(dice_per_class(preds, targets, num_classes), expected)
    _close(mean_dice(preds, targets, num_classes), dice_score(labels, targets, average="macro", **options)[0])


@pytest.mark.parametrize("seed", range(12))
def test_dice_with_ignore_index_matches_sklearn_f1_on_kept_pixels(seed):
    preds, labels, targets, num_classes = _case(seed)
    kept = targets != 255
    expected = skm.f1_score(
        targets[kept].numpy(), labels[kept].numpy(), labels=range(num_classes), average=None, zero_division=np.nan
    )
    ours = dice_per_class(preds, targets, num_classes, ignore_index=255)
    _close(ours, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN when every pixel is ignored
        _close(mean_dice(preds, targets, num_classes, ignore_index=255), np.nanmean(expected))


def test_hand_computed_two_class_example():
    # target 0 0 1 1 / pred 0 1 1 1: class 0 has TP 1, FN 1; class 1 has TP 2, FP 1.
    preds, targets = torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 0], [1, 1]]])
    _close(iou_per_class(preds, targets, 3), [1 / 2, 2 / 3, math.nan])
    _close(dice_per_class(preds, targets, 3), [2 / 3, 4 / 5, math.nan])
    _close(mean_iou(preds, targets, 3), (1 / 2 + 2 / 3) / 2)
    _close(pixel_accuracy(preds, targets, 3), 3 / 4)


_ZEROS = torch.zeros(1, 2, 2, dtype=torch.long)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: confusion_matrix(_ZEROS, torch.tensor([[[0, 7], [1, 0]]]), 5), ValueError, "got 7"),
        (lambda: mean_iou(_ZEROS, torch.tensor([[[0, 254], [1, 0]]]), 5, 255), ValueError, "=255, got 254"),
        (lambda: pixel_accuracy(_ZEROS, torch.full((1, 2, 2), -1), 5), ValueError, "got -1"),
        (lambda: mean_iou(torch.randn(1, 4, 2, 2), _ZEROS, 5), ValueError, "\\[1, 5, 2, 2\\]"),
        (lambda: mean_iou(torch.zeros(1, 3, 2, dtype=torch.long), _ZEROS, 5), ValueError, "shaped like targets"),
        (lambda: dice_per_class(_ZEROS.float(), _ZEROS.float(), 5), TypeError, "integer"),
        (lambda: dice_per_class(torch.full((1, 3, 2, 2), math.nan), _ZEROS, 3), ValueError, "NaN"),
        (lambda: SegmentationMetrics(0), ValueError, "num_classes"),
        (lambda: SegmentationMetrics(3, ignore_index=2.5), TypeError, "ignore_index"),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_empty_and_fully_ignored_inputs():
    empty = torch.zeros(0, 4, 4, dtype=torch.long)
    assert confusion_matrix(empty, empty, 3).sum() == 0
    assert pixel_accuracy(empty, empty, 3).isnan()
    assert iou_per_class(torch.zeros(0, 3, 4, 4), empty, 3).isnan().all()
    ignored = torch.full((1, 2, 2), 255)
    assert pixel_accuracy(torch.zeros(1, 2, 2, dtype=torch.long), ignored, 3, ignore_index=255).isnan()


def test_accumulator_over_batches_equals_torchmetrics_on_everything_and_reset_empties_it():
    generator = torch.Generator().manual_seed(0)
    batches = []
    for n in (1, 3, 0, 2):
        logits = torch.randn(n, 6, 5, 4, generator=generator)
        logits[:, 4] = -10.0  # class 4 is never predicted and (below) never true: NaN, left out of the means
        targets = torch.randint(0, 4, (n, 5, 4), generator=generator)
        targets[torch.rand(n, 5, 4, generator=generator) < 0.2] = 255
        batches.append((logits, targets))
    metric = SegmentationMetrics(6)  # ignore_index=255 by default
    for logits, targets in batches:
        metric.update(logits, targets)
    labels = torch.cat([logits.argmax(1).flatten() for logits, _ in batches])
    targets = torch.cat([targets.flatten() for _, targets in batches])
    result = metric.compute()
    assert set(result) == {"pixel_accuracy", "mean_iou", "iou_per_class", "mean_dice", "dice_per_class"}
    assert result["iou_per_class"][4].isnan() and not result["iou_per_class"][5].isnan()
    _close(result["mean_iou"], multiclass_jaccard_index(labels, targets, 6, ignore_index=255))
    _close(result["pixel_accuracy"], multiclass_accuracy(labels, targets, 6, average="micro", ignore_index=255))
    jaccard = multiclass_jaccard_index(labels, targets, 6, average="none", ignore_index=255)
    _close(result["iou_per_class"].nan_to_num(0.0), jaccard)
    kept = targets != 255
    f1 = skm.f1_score(targets[kept], labels[kept], labels=range(6), average=None, zero_division=np.nan)
    _close(result["dice_per_class"], f1)
    _close(result["mean_dice"], np.nanmean(f1))
    metric.reset()
    with pytest.raises(ValueError, match="before any update"):
        metric.compute()
    metric.update(torch.tensor([[[1, 2]]]), torch.tensor([[[1, 1]]]))
    _close(metric.compute()["pixel_accuracy"], 0.5)
