"""Batch norm: forward, gradients and running-buffer updates against F.batch_norm; gradcheck."""

import pytest
import torch
import torch.nn.functional as F

from zoo.fundamentals.autograd.batch_norm import batch_norm


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 5), (4, 3, 5, 6)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_matches_torch(compare_with_torch, dtype, shape, training, affine):
    x = torch.randn(*shape, dtype=dtype) * 3 + 1
    weight = torch.rand(3, dtype=dtype) + 0.5 if affine else None
    bias = torch.randn(3, dtype=dtype) if affine else None
    ours_mean, ours_var = torch.randn(3, dtype=dtype), torch.rand(3, dtype=dtype) + 0.5
    torch_mean, torch_var = ours_mean.clone(), ours_var.clone()
    out = compare_with_torch(
        lambda x, w, b: batch_norm(x, ours_mean, ours_var, w, b, training, 0.3, 1e-3),
        lambda x, w, b: F.batch_norm(x, torch_mean, torch_var, w, b, training, 0.3, 1e-3),
        x,
        weight,
        bias,
    )
    assert type(out.grad_fn).__name__ == "BatchNormFunctionBackward"
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours_mean, torch_mean, **tol)
    torch.testing.assert_close(ours_var, torch_var, **tol)


def test_batch_norm_running_stats_closed_form():
    # x = [[0], [2]]: batch mean 1, biased variance 1 (used to normalise), unbiased 2 (for the buffer).
    x = torch.tensor([[0.0], [2.0]])
    running_mean, running_var = torch.zeros(1), torch.ones(1)
    out = batch_norm(x, running_mean, running_var, training=True, momentum=0.5, eps=0.0)
    torch.testing.assert_close(out, torch.tensor([[-1.0], [1.0]]))
    torch.testing.assert_close(running_mean, torch.tensor([0.5]))
    torch.testing.assert_close(running_var, torch.tensor([1.5]))


def test_batch_norm_without_buffers_in_training(compare_with_torch):
    compare_with_torch(
        lambda x: batch_norm(x, None, None, training=True),
        lambda x: F.batch_norm(x, None, None, training=True),
        torch.randn(4, 2, 3, 3),
    )


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(training):
    x = torch.randn(3, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)
    mean, var = torch.randn(2, dtype=torch.float64), torch.rand(2, dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(
        # Clones: a training-mode call updates the buffers, and gradcheck calls the function many times.
        lambda x, w, b: batch_norm(x, mean.clone(), var.clone(), w, b, training),
        (x, weight, bias),
    )


def test_batch_norm_rejects_bad_input():
    x = torch.randn(4, 3, 2, 2)
    with pytest.raises(ValueError, match="more than one value per channel"):
        batch_norm(torch.randn(1, 3), None, None, training=True)
    with pytest.raises(ValueError, match="required in evaluation mode"):
        batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"weight: expected shape \[3\]"):
        batch_norm(x, None, None, torch.ones(4), training=True)
    with pytest.raises(ValueError, match="momentum"):
        batch_norm(x, None, None, training=True, momentum=1.5)
    with pytest.raises(ValueError, match="2-D"):
        batch_norm(torch.randn(4), None, None, training=True)
