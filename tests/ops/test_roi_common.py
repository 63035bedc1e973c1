"""What roi_align and roi_pool share through zoo.ops._roi_common, against torchvision.ops: per-image box lists,
chunked and size-grouped RoIs, empty inputs, and the argument checks."""

import pytest
import torch
from roi_cases import random_case
from torchvision.ops import roi_align as reference_roi_align
from torchvision.ops import roi_pool as reference_roi_pool

from zoo.ops import _roi_common, roi_align, roi_pool


@pytest.mark.parametrize("op, reference", [(roi_align, reference_roi_align), (roi_pool, reference_roi_pool)])
def test_list_of_boxes_per_image(op, reference):
    features = torch.randn(3, 2, 10, 9)
    boxes = [torch.rand(4, 4) * 5 + torch.tensor([0, 0, 4, 4.0]), torch.zeros(0, 4), torch.rand(3, 4) * 9]
    torch.testing.assert_close(op(features, boxes, 2), reference(features, boxes, 2))


def test_chunked_and_grouped_rois_match_torchvision(monkeypatch):
    # A tiny budget forces many chunks and size groups (processed out of RoI order) in both ops.
    monkeypatch.setattr(_roi_common, "BUDGET", 200)
    features, rois = random_case(0.5, torch.float64, num_rois=30)
    features.requires_grad_(True)
    for op, reference, kwargs in (
        (roi_align, reference_roi_align, {"sampling_ratio": -1}),
        (roi_align, reference_roi_align, {"sampling_ratio": 2, "aligned": True}),
        (roi_pool, reference_roi_pool, {}),
    ):
        ours, expected = op(features, rois, (3, 2), 0.5, **kwargs), reference(features, rois, (3, 2), 0.5, **kwargs)
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
        ours_grad = torch.autograd.grad(ours.sum(), features)[0]
        torch.testing.assert_close(ours_grad, torch.autograd.grad(expected.sum(), features)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("op", [roi_align, roi_pool])
@pytest.mark.parametrize("boxes", [torch.zeros(0, 5), [torch.zeros(0, 4), torch.zeros(0, 4)], []])
def test_no_rois_give_an_empty_output(op, boxes):
    features = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    out = op(features, boxes, (2, 4))
    assert out.shape == (0, 3, 2, 4) and out.dtype == torch.float64
    assert reference_roi_align(features, torch.zeros(0, 5, dtype=torch.float64), (2, 4)).shape == out.shape


FEATURES = torch.zeros(2, 3, 5, 5)
ROIS = torch.tensor([[0, 1.0, 1.0, 3.0, 3.0]])
BAD_ARGUMENTS = [
    ((torch.zeros(3, 5, 5), ROIS, 2), {}, ValueError, "4-D"),
    ((torch.zeros(1, 3, 5, 5, dtype=torch.long), ROIS, 2), {}, TypeError, "floating-point"),
    (([[0.0]], ROIS, 2), {}, TypeError, "torch.Tensor"),
    ((FEATURES, torch.zeros(1, 4), 2), {}, ValueError, r"Tensor\[K, 5\]"),
    ((FEATURES, [torch.zeros(1, 5)], 2), {}, ValueError, r"boxes\[0\]"),
    ((FEATURES, [ROIS[:, 1:], [1, 2, 3, 4]], 2), {}, TypeError, r"boxes\[1\]"),
    ((FEATURES, 3.0, 2), {}, TypeError, "boxes"),
    ((FEATURES, ROIS, 0), {}, ValueError, "positive"),
    ((FEATURES, ROIS, (2, -1)), {}, ValueError, "positive"),
    ((FEATURES, ROIS, (2,)), {}, TypeError, "output_size"),
    ((FEATURES, ROIS, 2.5), {}, TypeError, "output_size"),
    ((FEATURES, ROIS, 2), {"spatial_scale": 0.0}, ValueError, "spatial_scale"),
    ((FEATURES, ROIS, 2), {"spatial_scale": float("nan")}, ValueError, "spatial_scale"),
    ((FEATURES, ROIS, 2), {"spatial_scale": "1"}, TypeError, "spatial_scale"),
    ((FEATURES, torch.tensor([[2, 1.0, 1.0, 3.0, 3.0]]), 2), {}, ValueError, "batch index"),
    ((FEATURES, torch.tensor([[-1, 1.0, 1.0, 3.0, 3.0]]), 2), {}, ValueError, "batch index"),
    ((FEATURES, [ROIS[:, 1:]] * 3, 2), {}, ValueError, "batch index"),
    ((FEATURES, torch.tensor([[0, 1.0, float("nan"), 3.0, 3.0]]), 2), {}, ValueError, "finite"),
]


@pytest.mark.parametrize("op", [roi_align, roi_pool])
@pytest.mark.parametrize("args, kwargs, error, message", BAD_ARGUMENTS)
def test_bad_arguments_raise(op, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        op(*args, **kwargs)
