"""zoo.ops.roi_align against torchvision.ops.roi_align: values, gradients, edge RoIs, closed forms."""

import pytest
import torch
from roi_cases import EDGE_BOXES, SCALES, random_case
from torchvision.ops import roi_align as reference_roi_align

from zoo.ops import roi_align


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2, 3])
def test_roi_align_matches_torchvision(aligned, sampling_ratio):
    for scale in SCALES:
        features, rois = random_case(scale)
        for output_size in (1, (2, 3), 7):
            ours = roi_align(features, rois, output_size, scale, sampling_ratio, aligned)
            expected = reference_roi_align(features, rois, output_size, scale, sampling_ratio, aligned)
            torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_roi_align_edge_rois_match_torchvision(aligned, sampling_ratio, scale):
    features = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    boxes = torch.tensor(EDGE_BOXES, dtype=torch.float64) / scale
    rois = torch.cat([torch.arange(len(boxes)).remainder(2)[:, None].double(), boxes], dim=1)
    ours = roi_align(features, rois, (3, 4), scale, sampling_ratio, aligned)
    expected = reference_roi_align(features, rois, (3, 4), scale, sampling_ratio, aligned)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)


def test_roi_align_one_cell_map_and_closed_form():
    # A 1 x 1 map: every sample inside [-1, 1] reads the single cell, every sample outside reads 0.
    features = torch.tensor([[[[2.5]]]])
    rois = torch.tensor([[0, -0.5, -0.5, 0.5, 0.5], [0, 3.0, 3.0, 4.0, 4.0]])
    ours = roi_align(features, rois, 2, sampling_ratio=2)
    assert torch.equal(ours[0], torch.full((1, 2, 2), 2.5))
    assert torch.equal(ours[1], torch.zeros(1, 2, 2))
    torch.testing.assert_close(ours, reference_roi_align(features, rois, 2, sampling_ratio=2))


def test_roi_align_bilinear_closed_form():
    # f(y, x) = 3 y + 5 x is reproduced exactly by bilinear interpolation inside the map: a 1-sample bin at the
    # centre (cy, cx) of a RoI reads 3 cy + 5 cx.
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(9.0), indexing="ij")
    features = (3 * ys + 5 * xs)[None, None].double()
    rois = torch.tensor([[0, 1.0, 2.0, 4.0, 3.0], [0, 0.25, 0.5, 6.75, 6.5]], dtype=torch.float64)
    ours = roi_align(features, rois, 1, sampling_ratio=1)
    centres = (rois[:, 1:3] + rois[:, 3:]) / 2
    torch.testing.assert_close(ours.flatten(), 3 * centres[:, 1] + 5 * centres[:, 0])


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_gradient_matches_torchvision(aligned, sampling_ratio):
    for dtype, tolerance in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        features, rois = random_case(0.5, dtype)
        features.requires_grad_(True)
        weight = torch.randn(len(rois), 3, 2, 3, dtype=dtype)
        ours = torch.autograd.grad(
            (roi_align(features, rois, (2, 3), 0.5, sampling_ratio, aligned) * weight).sum(), features
        )
        expected = torch.autograd.grad(
            (reference_roi_align(features, rois, (2, 3), 0.5, sampling_ratio, aligned) * weight).sum(), features
        )
        torch.testing.assert_close(ours[0], expected[0], rtol=0, atol=tolerance)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_gradcheck(aligned, sampling_ratio):
    features = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [[0, 0.3, 0.7, 4.1, 3.9], [1, -1.2, 1.0, 2.5, 6.5], [1, 2.0, 2.0, 2.4, 2.2]], dtype=torch.float64
    )
    assert torch.autograd.gradcheck(
        lambda f: roi_align(f, rois, 2, 0.9, sampling_ratio, aligned), (features,), fast_mode=True
    )


def test_roi_align_boxes_get_no_gradient_and_input_layout_does_not_matter():
    features, rois = random_case(1.0)
    expected = reference_roi_align(features, rois, 3, 1.0, 2)
    rois.requires_grad_(True)
    channels_last = features.to(memory_format=torch.channels_last)
    strided = torch.randn(2, 3, features.shape[2], features.shape[3] * 2)[..., ::2]
    strided.copy_(features)
    for layout in (channels_last, strided):
        ours = roi_align(layout, rois, 3, 1.0, 2)
        assert ours.is_contiguous() and not ours.requires_grad
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("sampling_ratio", [2.0, None, True])
def test_roi_align_sampling_ratio_must_be_an_int(sampling_ratio):
    with pytest.raises(TypeError, match="sampling_ratio"):
        roi_align(torch.zeros(2, 3, 5, 5), torch.tensor([[0, 1.0, 1.0, 3.0, 3.0]]), 2, sampling_ratio=sampling_ratio)
