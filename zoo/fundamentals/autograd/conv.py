"""2-D convolution with a hand-written backward pass (stride, padding, dilation and groups).

Forward is :func:`~zoo.fundamentals.conv.conv2d_im2col`, ``out[n, g] = W[g] @ cols[n, g] + b``. With
``δ = ∂L/∂out`` laid out as ``[N, G, C_out/G, L]`` the three gradients are matrix products on the same columns:

    ∂L/∂W[g]  = Σ_n δ[n, g] @ cols[n, g]ᵀ
    ∂L/∂cols  = W[g]ᵀ @ δ[n, g],          ∂L/∂x = col2im(∂L/∂cols)      (im2col's adjoint scatters back)
    ∂L/∂b     = Σ_{n, y, x} δ

First-order only: the backward is not itself differentiable through autograd (``once_differentiable``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from zoo.fundamentals.conv import IntPair, check_conv2d_args, col2im, conv2d_im2col, im2col

__all__ = ["Conv2dFunction", "conv2d"]


class Conv2dFunction(torch.autograd.Function):
    """``[N, C_in, H, W]`` input, ``[C_out, C_in/groups, k_h, k_w]`` weight, optional ``[C_out]`` bias; stride,
    padding and dilation as ``(h, w)`` pairs (see :func:`conv2d` for the checked entry point)."""

    @staticmethod
    def forward(ctx: FunctionCtx, input, weight, bias, stride, padding, dilation, groups):
        # Only the input is kept: the columns are rebuilt in backward rather than held (k_h·k_w times the input).
        ctx.save_for_backward(input, weight)
        ctx.geometry = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        return conv2d_im2col(input, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_output: Tensor):
        input, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.geometry
        n, out_channels, out_h, out_w = grad_output.shape
        kernel = tuple(weight.shape[-2:])
        delta = grad_output.reshape(n, groups, out_channels // groups, out_h * out_w)
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_cols = weight.reshape(1, groups, out_channels // groups, -1).transpose(-1, -2) @ delta
            grad_input = col2im(
                grad_cols.reshape(n, -1, out_h * out_w), tuple(input.shape[-2:]), kernel, dilation, padding, stride
            )
        if ctx.needs_input_grad[1]:
            cols = im2col(input, kernel, dilation, padding, stride).reshape(n, groups, -1, out_h * out_w)
            grad_weight = (delta @ cols.transpose(-1, -2)).sum(0).reshape(weight.shape)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_output.sum((0, 2, 3))
        return grad_input, grad_weight, grad_bias, None, None, None, None


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor:
    """Drop-in for ``F.conv2d`` (numeric padding) whose gradients wrt input, weight and bias are computed by
    :class:`Conv2dFunction`; ``input`` is ``[N, C_in, H, W]`` or unbatched ``[C_in, H, W]``."""
    stride, padding, dilation = check_conv2d_args(input, weight, bias, stride, padding, dilation, groups)
    if input.dim() == 3:
        return Conv2dFunction.apply(input.unsqueeze(0), weight, bias, stride, padding, dilation, groups).squeeze(0)
    return Conv2dFunction.apply(input, weight, bias, stride, padding, dilation, groups)
