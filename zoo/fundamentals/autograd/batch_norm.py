"""Batch normalisation (Ioffe & Szegedy, 2015) with a hand-written backward pass, drop-in for ``F.batch_norm``.

Per channel ``c``, over the ``M = N · H · W`` (or ``N``) values of a ``[N, C, *]`` input, in training mode:

    μ = mean(x),   σ² = mean((x - μ)²)  (biased),   x̂ = (x - μ) / sqrt(σ² + ε),   y = γ x̂ + β

and, with ``g = γ · ∂L/∂y``, the gradients are

    ∂L/∂x = (g - mean(g) - x̂ · mean(g x̂)) / sqrt(σ² + ε),   ∂L/∂γ = Σ ∂L/∂y · x̂,   ∂L/∂β = Σ ∂L/∂y

(the two mean terms are what μ and σ² contribute, both being functions of the whole batch). The running buffers,
when given, are updated in place as ``r ← (1 - momentum) · r + momentum · s`` with the *unbiased* variance
``σ² · M / (M - 1)``. In evaluation mode μ and σ² are the running buffers, constants, and ``∂L/∂x = g / sqrt(σ² + ε)``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from zoo.fundamentals._common import check_tensor

__all__ = ["BatchNormFunction", "batch_norm"]


def _per_channel(t: Tensor, ndim: int) -> Tensor:
    """``[C] -> [1, C, 1, ...]`` to broadcast against a rank-``ndim`` input."""
    return t.view(1, -1, *([1] * (ndim - 2)))


class BatchNormFunction(torch.autograd.Function):
    """Returns ``(y, batch_mean, batch_var)``; the statistics (biased variance) are not differentiable outputs,
    they are there for the running-buffer update. ``weight``/``bias`` may be ``None``; in evaluation mode ``mean``
    and ``var`` are the running buffers, in training mode ``None``."""

    @staticmethod
    def forward(ctx: FunctionCtx, input, weight, bias, mean, var, training, eps):
        dims = [d for d in range(input.dim()) if d != 1]
        if training:
            mean = input.mean(dim=dims)
            var = input.var(dim=dims, correction=0)
        inv_std = torch.rsqrt(var + eps)
        x_hat = (input - _per_channel(mean, input.dim())) * _per_channel(inv_std, input.dim())
        out = x_hat
        if weight is not None:
            out = out * _per_channel(weight, input.dim())
        if bias is not None:
            out = out + _per_channel(bias, input.dim())
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.training = training
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_output: Tensor, _grad_mean, _grad_var):
        x_hat, inv_std, weight = ctx.saved_tensors
        ndim, dims = grad_output.dim(), [d for d in range(grad_output.dim()) if d != 1]
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            g = grad_output if weight is None else grad_output * _per_channel(weight, ndim)
            if ctx.training:
                g = g - g.mean(dim=dims, keepdim=True) - x_hat * (g * x_hat).mean(dim=dims, keepdim=True)
            grad_input = g * _per_channel(inv_std, ndim)
        if weight is not None and ctx.needs_input_grad[1]:
            grad_weight = (grad_output * x_hat).sum(dim=dims)
        if ctx.needs_input_grad[2]:
            grad_bias = grad_output.sum(dim=dims)
        return grad_input, grad_weight, grad_bias, None, None, None, None


def _check_channel_vector(t: Tensor | None, name: str, channels: int, dtype: torch.dtype) -> None:
    if t is None:
        return
    check_tensor(t, name, (1,))
    if t.shape[0] != channels or t.dtype != dtype:
        raise ValueError(f"{name}: expected shape [{channels}] and dtype {dtype}, got {list(t.shape)} {t.dtype}")


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Drop-in for ``F.batch_norm`` on ``[N, C]`` or ``[N, C, *]``, gradients by :class:`BatchNormFunction`.

    Training mode normalises with the batch statistics and, if the running buffers are given, updates them in
    place; evaluation mode normalises with the running buffers, which it then requires.
    """
    check_tensor(input, "input", range(2, 6))
    channels = input.shape[1]
    for t, name in ((running_mean, "running_mean"), (running_var, "running_var"), (weight, "weight"), (bias, "bias")):
        _check_channel_vector(t, name, channels, input.dtype)
    if not 0.0 <= momentum <= 1.0 or not eps >= 0:
        raise ValueError(f"expected momentum in [0, 1] and eps >= 0, got momentum={momentum!r}, eps={eps!r}")
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("running_mean and running_var are required in evaluation mode (training=False)")
        return BatchNormFunction.apply(input, weight, bias, running_mean, running_var, False, eps)[0]
    count = input.numel() // max(channels, 1)
    if count < 2:
        raise ValueError(f"training mode needs more than one value per channel, got input shape {list(input.shape)}")
    out, mean, var = BatchNormFunction.apply(input, weight, bias, None, None, True, eps)
    with torch.no_grad():
        if running_mean is not None:
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        if running_var is not None:
            running_var.mul_(1 - momentum).add_(var * (count / (count - 1)), alpha=momentum)
    return out
