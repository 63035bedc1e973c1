"""Max / average pooling: forward, indices and gradients against F.max_pool2d / F.avg_pool2d; gradcheck."""

import pytest
import torch
import torch.nn.functional as F

from zoo.fundamentals.autograd.pooling import avg_pool2d, max_pool2d

# (kernel, stride, padding)
POOL_CASES = [(2, None, 0), (3, 2, 1), (3, 1, 1), ((3, 2), (1, 2), (1, 1)), ((2, 4), (2, 3), (0, 2))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
@pytest.mark.parametrize("dilation", [1, (2, 1)])
def test_max_pool2d_matches_torch(compare_with_torch, dtype, kernel, stride, padding, dilation):
    x = torch.randn(2, 3, 9, 10, dtype=dtype)
    out = compare_with_torch(
        lambda x: max_pool2d(x, kernel, stride, padding, dilation),
        lambda x: F.max_pool2d(x, kernel, stride, padding, dilation),
        x,
    )
    assert type(out.grad_fn).__name__ == "MaxPool2dFunctionBackward"
    _, indices = max_pool2d(x, kernel, stride, padding, dilation, return_indices=True)
    _, expected = F.max_pool2d(x, kernel, stride, padding, dilation, return_indices=True)
    assert torch.equal(indices, expected)


def test_max_pool2d_ties_and_overlapping_windows(compare_with_torch):
    # Integer-valued input: many ties inside windows (PyTorch picks the first maximum) and, with stride 1,
    # one pixel is the arg-max of several windows (its gradients add up).
    x = torch.randint(0, 3, (2, 2, 6, 7)).double()
    compare_with_torch(lambda x: max_pool2d(x, 3, 1, 1), lambda x: F.max_pool2d(x, 3, 1, 1), x)
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    max_pool2d(x, 2, 1).sum().backward()
    # All equal: each of the 9 windows routes its gradient to its top-left pixel.
    expected = torch.tensor([[1.0, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.float64)
    torch.testing.assert_close(x.grad[0, 0], expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
@pytest.mark.parametrize("count_include_pad,divisor_override", [(True, None), (False, None), (True, 5)])
def test_avg_pool2d_matches_torch(
    compare_with_torch, dtype, kernel, stride, padding, count_include_pad, divisor_override
):
    x = torch.randn(2, 3, 9, 10, dtype=dtype)
    out = compare_with_torch(
        lambda x: avg_pool2d(x, kernel, stride, padding, count_include_pad, divisor_override),
        lambda x: F.avg_pool2d(x, kernel, stride, padding, False, count_include_pad, divisor_override),
        x,
    )
    assert type(out.grad_fn).__name__ == "AvgPool2dFunctionBackward"


def test_pooling_unbatched_and_empty(compare_with_torch):
    x = torch.randn(3, 6, 6)
    compare_with_torch(lambda x: max_pool2d(x, 2), lambda x: F.max_pool2d(x, 2), x)
    compare_with_torch(lambda x: avg_pool2d(x, 3, 2, 1), lambda x: F.avg_pool2d(x, 3, 2, 1), x)
    empty = torch.randn(0, 3, 6, 6)
    assert max_pool2d(empty, 2).shape == F.max_pool2d(empty, 2).shape
    assert avg_pool2d(empty, 3, 2, 1).shape == F.avg_pool2d(empty, 3, 2, 1).shape


@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES[1:4])
def test_pooling_gradcheck(kernel, stride, padding):
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: max_pool2d(x, kernel, stride, padding), (x,))
    assert torch.autograd.gradcheck(lambda x: avg_pool2d(x, kernel, stride, padding, False), (x,))


@pytest.mark.parametrize("pool", [max_pool2d, avg_pool2d])
def test_pooling_rejects_bad_input(pool):
    with pytest.raises(ValueError, match="half the kernel"):
        pool(torch.randn(1, 1, 6, 6), 3, 1, 2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        pool(torch.randn(1, 1, 2, 2), 5, 1, 1)
    with pytest.raises(ValueError, match="3-D or 4-D"):
        pool(torch.randn(6, 6), 2)
    with pytest.raises(TypeError, match="floating"):
        pool(torch.ones(1, 1, 4, 4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="stride"):
        pool(torch.randn(1, 1, 6, 6), 2, 0)
