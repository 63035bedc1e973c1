"""Conv2dFunction: forward and gradients against F.conv2d and autograd; gradcheck in float64."""

import pytest
import torch
import torch.nn.functional as F

from zoo.fundamentals.autograd.conv import conv2d

# (kernel, stride, padding, dilation, groups, in_channels, out_channels)
CASES = [
    ((3, 3), 1, 0, 1, 1, 3, 4),
    ((3, 3), 2, 1, 1, 1, 3, 5),
    ((2, 3), (2, 1), (1, 0), (1, 2), 2, 4, 6),
    ((3, 3), 1, 1, 1, 4, 4, 4),  # depthwise
    ((3, 2), (3, 2), 2, 2, 2, 2, 4),  # stride that skips the last rows: they get zero gradient
    ((1, 1), 1, 0, 1, 1, 3, 2),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel,stride,padding,dilation,groups,in_channels,out_channels", CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv2d_matches_torch(
    compare_with_torch, dtype, kernel, stride, padding, dilation, groups, in_channels, out_channels, with_bias
):
    x = torch.randn(2, in_channels, 9, 8, dtype=dtype)
    weight = torch.randn(out_channels, in_channels // groups, *kernel, dtype=dtype)
    bias = torch.randn(out_channels, dtype=dtype) if with_bias else None
    out = compare_with_torch(
        lambda x, w, b: conv2d(x, w, b, stride, padding, dilation, groups),
        lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups),
        x,
        weight,
        bias,
    )
    assert type(out.grad_fn).__name__ == "Conv2dFunctionBackward"


def test_conv2d_unbatched(compare_with_torch):
    compare_with_torch(
        lambda x, w, b: conv2d(x, w, b, 2, 1),
        lambda x, w, b: F.conv2d(x, w, b, 2, 1),
        torch.randn(3, 7, 7),
        torch.randn(2, 3, 3, 3),
        torch.randn(2),
    )


@pytest.mark.parametrize("kernel,stride,padding,dilation,groups,in_channels,out_channels", CASES[1:5])
def test_conv2d_gradcheck(kernel, stride, padding, dilation, groups, in_channels, out_channels):
    x = torch.randn(1, in_channels, 6, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(out_channels, in_channels // groups, *kernel, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(out_channels, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: conv2d(x, w, b, stride, padding, dilation, groups), (x, weight, bias)
    )


def test_conv2d_only_computes_requested_gradients():
    x = torch.randn(1, 2, 5, 5)
    weight = torch.randn(3, 2, 3, 3, requires_grad=True)
    (grad,) = torch.autograd.grad(conv2d(x, weight).sum(), weight)
    # d(sum out)/dW[o, c, i, j] = sum of the input pixels that tap (i, j) touches.
    expected = torch.stack([x[0, :, i : i + 3, j : j + 3].sum((1, 2)) for i in range(3) for j in range(3)], -1)
    torch.testing.assert_close(grad, expected.view(1, 2, 3, 3).expand(3, 2, 3, 3))


def test_conv2d_rejects_bad_input():
    with pytest.raises(ValueError, match="channels"):
        conv2d(torch.randn(1, 4, 5, 5), torch.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv2d(torch.randn(1, 3, 2, 2), torch.randn(2, 3, 3, 3))
