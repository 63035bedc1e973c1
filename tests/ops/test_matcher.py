"""Matcher and BalancedPositiveNegativeSampler against torchvision.models.detection._utils."""

import pytest
import torch
from torchvision.models.detection import _utils as reference
from torchvision.ops import box_iou

from zoo.ops.matcher import BalancedPositiveNegativeSampler, Matcher

THRESHOLDS = [(0.7, 0.3), (0.5, 0.5), (0.6, 0.0)]


def random_boxes(n):
    corner = torch.rand(n, 2) * 60
    return torch.cat([corner, corner + torch.rand(n, 2) * 40 + 1], dim=1)


def quality_matrices():
    yield box_iou(random_boxes(6), random_boxes(300))  # real IoUs: mostly zeros, ties at 0
    yield torch.rand(8, 50)
    yield torch.randint(0, 5, (7, 60)) / 4  # many ties, inside and across rows and columns
    yield torch.full((3, 10), 0.5)  # all tied
    yield torch.rand(1, 20) * 0.4  # one gt, all low quality
    yield torch.rand(20, 1)


@pytest.mark.parametrize(("high", "low"), THRESHOLDS)
@pytest.mark.parametrize("low_quality", [False, True])
def test_matcher_matches_torchvision(high, low, low_quality):
    ours, theirs = Matcher(high, low, low_quality), reference.Matcher(high, low, low_quality)
    for quality in quality_matrices():
        matches = ours(quality)
        assert matches.dtype == torch.int64 and matches.shape == (quality.shape[1],)
        assert torch.equal(matches, theirs(quality.clone()))


def test_matcher_hand_computed():
    quality = torch.tensor([[0.1, 0.2, 0.05, 0.8], [0.6, 0.2, 0.1, 0.75]])
    assert Matcher(0.7, 0.3)(quality).tolist() == [Matcher.BETWEEN_THRESHOLDS, -1, -1, 0]
    # gt 0's best is 0.8 (prediction 3); gt 1's best is 0.75 (prediction 3) -> nothing is added.
    assert Matcher(0.7, 0.3, True)(quality).tolist() == [-2, -1, -1, 0]
    quality[:, 3] = 0.0
    # Now gt 0's best is 0.2 at prediction 1 (a tie with gt 1: the first row wins), gt 1's is 0.6 at prediction 0.
    assert Matcher(0.7, 0.3, True)(quality).tolist() == [1, 0, -1, -1]
    assert (Matcher.BELOW_LOW_THRESHOLD, Matcher.BETWEEN_THRESHOLDS) == (-1, -2)


def test_matcher_empty_and_invalid_like_torchvision():
    for shape in ((0, 5), (3, 0)):
        with pytest.raises(ValueError) as ours:
            Matcher(0.7, 0.3)(torch.zeros(shape))
        with pytest.raises(ValueError) as theirs:
            reference.Matcher(0.7, 0.3)(torch.zeros(shape))
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError, match="low_threshold must be <= high_threshold"):
        Matcher(0.3, 0.7)
    with pytest.raises(ValueError, match="NaN"):
        Matcher(0.7, 0.3)(torch.tensor([[0.5, float("nan")]]))
    with pytest.raises(ValueError, match=r"\[M ground truths, N predictions\]"):
        Matcher(0.7, 0.3)(torch.rand(5))
    with pytest.raises(TypeError, match="numbers"):
        Matcher("0.7", 0.3)


def random_labels(n, rpn_style):
    labels = torch.randint(-1, 4, (n,))
    # The RPN passes float labels in {-1, 0, 1}; the box head int64 class labels.
    return labels.clamp(max=1).float() if rpn_style else labels


@pytest.mark.parametrize(("batch_size", "fraction"), [(16, 0.25), (64, 0.5), (7, 1.0), (10, 0.0), (512, 0.25)])
def test_sampler_draws_like_torchvision(batch_size, fraction):
    labels = [random_labels(n, rpn_style=i % 2 == 0) for i, n in enumerate((40, 0, 300, 3))]
    torch.manual_seed(123)
    expected = reference.BalancedPositiveNegativeSampler(batch_size, fraction)(labels)
    torch.manual_seed(123)
    ours = BalancedPositiveNegativeSampler(batch_size, fraction)(labels)
    generator = torch.Generator().manual_seed(123)
    with_generator = BalancedPositiveNegativeSampler(batch_size, fraction)(labels, generator=generator)
    for result in (ours, with_generator):
        for masks, expected_masks in zip(result, expected, strict=True):
            for mask, expected_mask in zip(masks, expected_masks, strict=True):
                assert mask.dtype == expected_mask.dtype == torch.uint8
                assert torch.equal(mask, expected_mask)


@pytest.mark.parametrize(("batch_size", "fraction"), [(16, 0.25), (100, 0.5), (8, 0.9)])
def test_sampler_counts_and_eligibility(batch_size, fraction):
    labels = [random_labels(n, rpn_style=False) for n in (5, 50, 400)]
    positive_masks, negative_masks = BalancedPositiveNegativeSampler(batch_size, fraction)(labels)
    for label, positive, negative in zip(labels, positive_masks, negative_masks, strict=True):
        num_positive = min(int((label >= 1).sum()), int(batch_size * fraction))
        num_negative = min(int((label == 0).sum()), batch_size - num_positive)
        assert int(positive.sum()) == num_positive and int(negative.sum()) == num_negative
        assert (label[positive.bool()] >= 1).all() and (label[negative.bool()] == 0).all()


def test_sampler_errors_and_empty():
    with pytest.raises(ValueError, match="positive_fraction"):
        BalancedPositiveNegativeSampler(16, 1.5)
    with pytest.raises(ValueError, match="positive_fraction"):
        BalancedPositiveNegativeSampler(16, -0.1)
    with pytest.raises(ValueError, match="non-negative"):
        BalancedPositiveNegativeSampler(-1, 0.5)
    with pytest.raises(TypeError, match="int"):
        BalancedPositiveNegativeSampler(16.0, 0.5)
    sampler = BalancedPositiveNegativeSampler(16, 0.5)
    with pytest.raises(ValueError, match="1-D"):
        sampler([torch.zeros(3, 2)])
    with pytest.raises(TypeError, match="list"):
        sampler(torch.zeros(5))
    positive, negative = sampler([torch.zeros(0, dtype=torch.long)])
    assert positive[0].shape == negative[0].shape == (0,)
    assert sampler([]) == ([], [])
