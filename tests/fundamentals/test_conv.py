"""im2col / col2im / conv2d_im2col against F.unfold, F.fold and F.conv2d."""

import pytest
import torch
import torch.nn.functional as F

from zoo.fundamentals.conv import col2im, conv2d_im2col, im2col

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}

# (kernel, stride, padding, dilation)
GEOMETRIES = [
    ((3, 3), 1, 0, 1),
    ((3, 3), 2, 1, 1),
    ((2, 5), (2, 1), (0, 2), 1),
    ((3, 2), 1, (2, 1), (2, 1)),
    ((1, 1), 3, 0, 1),
    ((4, 4), (3, 2), 2, 2),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel,stride,padding,dilation", GEOMETRIES)
def test_im2col_and_col2im_match_unfold_and_fold(dtype, kernel, stride, padding, dilation):
    x = torch.randn(2, 3, 9, 11, dtype=dtype)
    cols = im2col(x, kernel, dilation, padding, stride)
    expected = F.unfold(x, kernel, dilation, padding, stride)
    torch.testing.assert_close(cols, expected, rtol=0, atol=0)
    back = col2im(expected, (9, 11), kernel, dilation, padding, stride)
    torch.testing.assert_close(back, F.fold(expected, (9, 11), kernel, dilation, padding, stride), **TOL[dtype])


def test_col2im_is_the_adjoint_of_im2col():
    # <im2col(x), y> == <x, col2im(y)> in float64: a closed-form identity, independent of F.fold.
    x = torch.randn(1, 2, 7, 8, dtype=torch.float64)
    y = torch.randn_like(im2col(x, (3, 2), 2, 1, (2, 1)))
    lhs = (im2col(x, (3, 2), 2, 1, (2, 1)) * y).sum()
    rhs = (x * col2im(y, (7, 8), (3, 2), 2, 1, (2, 1))).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_im2col_of_a_non_contiguous_input():
    x = torch.randn(2, 9, 11, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(im2col(x, 3, 1, 1, 2), F.unfold(x, 3, 1, 1, 2), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel,stride,padding,dilation", GEOMETRIES)
@pytest.mark.parametrize(
    "groups,in_channels,out_channels,with_bias",
    [(1, 3, 4, True), (2, 4, 6, False), (4, 4, 4, True), (4, 4, 8, False)],  # the last two are depthwise
)
def test_conv2d_im2col_matches_conv2d(
    dtype, kernel, stride, padding, dilation, groups, in_channels, out_channels, with_bias
):
    x = torch.randn(2, in_channels, 10, 9, dtype=dtype)
    weight = torch.randn(out_channels, in_channels // groups, *kernel, dtype=dtype)
    bias = torch.randn(out_channels, dtype=dtype) if with_bias else None
    ours = conv2d_im2col(x, weight, bias, stride, padding, dilation, groups)
    expected = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    torch.testing.assert_close(ours, expected, **TOL[dtype])


def test_conv2d_im2col_unbatched_and_empty_batch():
    weight, bias = torch.randn(5, 3, 3, 3), torch.randn(5)
    x = torch.randn(3, 8, 8)
    torch.testing.assert_close(conv2d_im2col(x, weight, bias, padding=1), F.conv2d(x, weight, bias, padding=1))
    empty = torch.randn(0, 3, 8, 8)
    assert conv2d_im2col(empty, weight, bias, stride=2).shape == F.conv2d(empty, weight, bias, stride=2).shape


def test_conv2d_im2col_hand_computed():
    # A 2x2 all-ones kernel sums each 2x2 block; with bias 1 on arange(9).view(3, 3).
    x = torch.arange(9.0).view(1, 1, 3, 3)
    out = conv2d_im2col(x, torch.ones(1, 1, 2, 2), torch.ones(1))
    assert out.flatten().tolist() == [0 + 1 + 3 + 4 + 1, 1 + 2 + 4 + 5 + 1, 3 + 4 + 6 + 7 + 1, 4 + 5 + 7 + 8 + 1]


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(input=torch.randn(8, 8)), ValueError, "3-D or 4-D"),
        (dict(input=torch.randn(1, 5, 8, 8)), ValueError, "channels"),
        (dict(weight=torch.randn(5, 3, 3, 3), groups=3), ValueError, "divisible"),
        (dict(weight=torch.randn(4, 3, 9, 9)), ValueError, "larger than the padded input"),
        (dict(stride=0), ValueError, "stride"),
        (dict(padding=-1), ValueError, "padding"),
        (dict(padding="same"), TypeError, "padding"),
        (dict(groups=0), ValueError, "groups"),
        (dict(bias=torch.randn(3)), ValueError, "bias"),
        (dict(input=torch.randn(1, 3, 8, 8).double()), TypeError, "dtype"),
        (dict(input=torch.ones(1, 3, 8, 8, dtype=torch.long)), TypeError, "floating"),
        (dict(weight=[[1.0]]), TypeError, "torch.Tensor"),
    ],
)
def test_conv2d_im2col_rejects_bad_input(kwargs, error, match):
    args = dict(input=torch.randn(1, 3, 8, 8), weight=torch.randn(4, 3, 3, 3), bias=None) | kwargs
    with pytest.raises(error, match=match):
        conv2d_im2col(**args)


def test_col2im_rejects_a_mismatched_column_count():
    with pytest.raises(ValueError, match="expected shape"):
        col2im(torch.randn(1, 18, 10), (5, 5), 3)
