"""zoo.ops.roi_pool against torchvision.ops.roi_pool: values and gradients exactly, ties, rounding, NaN and -inf."""

import pytest
import torch
from roi_cases import EDGE_BOXES, SCALES, random_case
from torchvision.ops import roi_pool as reference_roi_pool

from zoo.ops import roi_pool


@pytest.mark.parametrize("scale", SCALES)
def test_roi_pool_matches_torchvision(scale):
    for quantised in (False, True):  # quantised values make ties: the first maximum must win
        features, rois = random_case(scale)
        if quantised:
            features = features.mul(2).round()
        features.requires_grad_(True)
        for output_size in (1, (2, 3), 7):
            ours = roi_pool(features, rois, output_size, scale)
            expected = reference_roi_pool(features, rois, output_size, scale)
            torch.testing.assert_close(ours, expected, rtol=0, atol=0)
            weight = torch.randn_like(ours)
            ours_grad = torch.autograd.grad((ours * weight).sum(), features)[0]
            expected_grad = torch.autograd.grad((expected * weight).sum(), features)[0]
            torch.testing.assert_close(ours_grad, expected_grad, rtol=0, atol=1e-5)


def test_roi_pool_rounds_halves_away_from_zero():
    features = torch.randn(1, 2, 8, 8)
    # round(0.5) = 1 and round(2.5) = 3 (C's round; torch.round would give 0 and 2): rows and columns 1..3.
    rois = torch.tensor([[0, 0.5, 0.5, 2.5, 2.5], [0, -0.5, -1.5, 1.5, 0.5], [0, 3.5, 4.5, 5.5, 6.5]])
    ours = roi_pool(features, rois, 1)
    torch.testing.assert_close(ours[0, :, 0, 0], features[0, :, 1:4, 1:4].amax(dim=(1, 2)))
    torch.testing.assert_close(ours, reference_roi_pool(features, rois, 1), rtol=0, atol=0)
    edge = torch.tensor([[0] + list(box) for box in EDGE_BOXES])
    torch.testing.assert_close(roi_pool(features, edge, (3, 2)), reference_roi_pool(features, edge, (3, 2)))


def test_roi_pool_ignores_nan_and_keeps_torchvisions_floor_for_minus_inf():
    features = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    features[0, 0, 1:3, 1:3] = float("nan")
    features[0, 1, :3, :3] = float("-inf")
    features[0, 1, 0, 0] = float("nan")
    rois = torch.tensor([[0, 0, 0, 5, 5], [0, 1, 1, 2, 2], [0, 0, 0, 1, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(roi_pool(features, rois, 3), reference_roi_pool(features, rois, 3), rtol=0, atol=0)


def test_roi_pool_gradcheck():
    features = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.0, 0.0, 5.0, 4.0], [0, 2.0, 1.0, 9.0, 3.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: roi_pool(f, rois, (2, 3)), (features,), fast_mode=True)
