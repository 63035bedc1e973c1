"""resize_bilinear against F.interpolate(mode="bilinear")."""

import pytest
import torch
import torch.nn.functional as F

from zoo.fundamentals.resize import resize_bilinear

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(14, 20), (3, 4), (7, 10), (1, 1), (13, 3), (5, 23), 9])
def test_resize_to_size_matches_interpolate(dtype, align_corners, size):
    x = torch.randn(2, 3, 7, 10, dtype=dtype)
    expected = F.interpolate(x, size, mode="bilinear", align_corners=align_corners)
    torch.testing.assert_close(resize_bilinear(x, size, align_corners=align_corners), expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("scale_factor", [2, 0.5, 1.7, 0.31, (2.5, 0.45)])
@pytest.mark.parametrize("recompute_scale_factor", [None, True])
def test_resize_by_scale_factor_matches_interpolate(dtype, align_corners, scale_factor, recompute_scale_factor):
    # With a non-integer factor the output size is rounded down, so whether the sampling uses the given factor
    # or the one recomputed from the sizes makes a visible difference.
    x = torch.randn(1, 2, 9, 11, dtype=dtype)
    kwargs = dict(scale_factor=scale_factor, align_corners=align_corners, recompute_scale_factor=recompute_scale_factor)
    expected = F.interpolate(x, mode="bilinear", **kwargs)
    torch.testing.assert_close(resize_bilinear(x, **kwargs), expected, **TOL[dtype])


def test_resize_hand_computed():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    # align_corners=True on 2 -> 3: the middle sample is the average of the two neighbours.
    expected = torch.tensor([[0.0, 0.5, 1.0], [1.0, 1.5, 2.0], [2.0, 2.5, 3.0]])
    torch.testing.assert_close(resize_bilinear(x, 3, align_corners=True)[0, 0], expected)
    # align_corners=False on 2 -> 4: samples at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (upper neighbour clamped).
    row = resize_bilinear(x[:, :, :1], (1, 4))[0, 0, 0]
    torch.testing.assert_close(row, torch.tensor([0.0, 0.25, 0.75, 1.0]))


def test_resize_unbatched_and_empty_batch():
    x = torch.randn(3, 5, 6)
    expected = F.interpolate(x[None], (8, 4), mode="bilinear")[0]
    torch.testing.assert_close(resize_bilinear(x, (8, 4)), expected)
    assert resize_bilinear(torch.randn(0, 3, 5, 6), (8, 4)).shape == (0, 3, 8, 4)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(), ValueError, "exactly one"),
        (dict(size=4, scale_factor=2.0), ValueError, "exactly one"),
        (dict(size=0), ValueError, "size"),
        (dict(size=(4, 4, 4)), TypeError, "size"),
        (dict(scale_factor=-1.0), ValueError, "scale_factor"),
        (dict(scale_factor=0.01), ValueError, "to nothing"),
        (dict(size=4, align_corners=None), TypeError, "align_corners"),
        (dict(size=4, recompute_scale_factor=True), ValueError, "recompute_scale_factor"),
    ],
)
def test_resize_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        resize_bilinear(torch.randn(1, 1, 5, 5), **kwargs)


def test_resize_rejects_bad_input():
    with pytest.raises(ValueError, match="3-D or 4-D"):
        resize_bilinear(torch.randn(5, 5), 3)
    with pytest.raises(TypeError, match="floating"):
        resize_bilinear(torch.ones(1, 1, 5, 5, dtype=torch.uint8), 3)
