"""Max and average pooling with hand-written backward passes (``ceil_mode=False``).

Both read the windows of the padded input as a strided view ``[N, C, k_h, k_w, H_out, W_out]``.

Max pooling pads with ``-inf`` (padding never wins) and keeps, for every output, the flat input index
``(y·s_h - p_h + i·d_h) · W + (x·s_w - p_w + j·d_w)`` of the first maximum in row-major window order (PyTorch's
``return_indices``). The gradient goes only there, summed where windows overlap on the same arg-max:

    ∂L/∂x[idx[n, c, o]] += ∂L/∂out[n, c, o]

Average pooling pads with zeros and divides by ``k_h·k_w`` (``count_include_pad=True``, PyTorch's default), by the
number of real pixels in the window (``count_include_pad=False``) or by ``divisor_override``. Every pixel of a
window receives ``∂L/∂out / divisor``: that spread is col2im of the broadcast gradient.

As in PyTorch, padding may be at most half the kernel (``p <= k // 2``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from zoo.fundamentals._common import as_pair, check_tensor, window_output_size
from zoo.fundamentals.conv import IntPair, col2im, sliding_windows

__all__ = ["MaxPool2dFunction", "AvgPool2dFunction", "max_pool2d", "avg_pool2d"]


def _pool_args(input, kernel_size, stride, padding, dilation=1):
    check_tensor(input, "input", (3, 4))
    kernel = as_pair(kernel_size, "kernel_size", minimum=1)
    stride = kernel if stride is None else as_pair(stride, "stride", minimum=1)
    padding = as_pair(padding, "padding", minimum=0)
    dilation = as_pair(dilation, "dilation", minimum=1)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"padding: expected at most half the kernel size {kernel}, got {padding}")
    window_output_size(input.shape[-2:], kernel, stride, padding, dilation)
    return kernel, stride, padding, dilation


def _unbatched_call(function, input: Tensor, *args):
    if input.dim() == 3:
        out = function.apply(input.unsqueeze(0), *args)
        return tuple(o.squeeze(0) for o in out) if isinstance(out, tuple) else out.squeeze(0)
    return function.apply(input, *args)


class MaxPool2dFunction(torch.autograd.Function):
    """Returns ``(values, indices)``; ``indices`` are flat positions in each ``H × W`` input plane."""

    @staticmethod
    def forward(ctx: FunctionCtx, input, kernel, stride, padding, dilation):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
        padded = F.pad(input, (pw, pw, ph, ph), value=float("-inf"))
        windows = sliding_windows(padded, kernel, stride, dilation)
        n, c, _, _, out_h, out_w = windows.shape
        values, offset = windows.reshape(n, c, kh * kw, out_h, out_w).max(dim=2)
        rows = torch.arange(out_h, device=input.device)[:, None] * sh - ph + (offset // kw) * dh
        cols = torch.arange(out_w, device=input.device) * sw - pw + (offset % kw) * dw
        indices = rows * input.shape[-1] + cols
        ctx.mark_non_differentiable(indices)
        ctx.save_for_backward(indices)
        ctx.input_shape = input.shape
        return values, indices

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_values: Tensor, _grad_indices):
        (indices,) = ctx.saved_tensors
        n, c, height, width = ctx.input_shape
        grad_input = grad_values.new_zeros(n, c, height * width)
        grad_input.scatter_add_(2, indices.reshape(n, c, -1), grad_values.reshape(n, c, -1))
        return grad_input.view(n, c, height, width), None, None, None, None


def max_pool2d(
    input: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Drop-in for ``F.max_pool2d`` (``ceil_mode=False``) on ``[N, C, H, W]`` or ``[C, H, W]``; ``stride``
    defaults to ``kernel_size``."""
    args = _pool_args(input, kernel_size, stride, padding, dilation)
    values, indices = _unbatched_call(MaxPool2dFunction, input, *args)
    return (values, indices) if return_indices else values


def _window_counts(size: int, out: int, kernel: int, stride: int, padding: int, device) -> Tensor:
    """Real (unpadded) pixels covered by each window along one axis."""
    start = torch.arange(out, device=device) * stride - padding
    return (start + kernel).clamp(max=size) - start.clamp(min=0)


class AvgPool2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, input, kernel, stride, padding, count_include_pad, divisor_override):
        (kh, kw), (ph, pw) = kernel, padding
        windows = sliding_windows(F.pad(input, (pw, pw, ph, ph)), kernel, stride, (1, 1))
        out_h, out_w = windows.shape[-2:]
        if divisor_override is not None:
            divisor = torch.tensor(float(divisor_override), dtype=input.dtype, device=input.device)
        elif count_include_pad:
            divisor = torch.tensor(float(kh * kw), dtype=input.dtype, device=input.device)
        else:
            count_h = _window_counts(input.shape[-2], out_h, kh, stride[0], ph, input.device)
            count_w = _window_counts(input.shape[-1], out_w, kw, stride[1], pw, input.device)
            divisor = (count_h[:, None] * count_w).to(input.dtype)
        ctx.save_for_backward(divisor)
        ctx.geometry = (tuple(input.shape[-2:]), kernel, stride, padding)
        return windows.sum(dim=(2, 3)) / divisor

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_output: Tensor):
        (divisor,) = ctx.saved_tensors
        size, (kh, kw), stride, padding = ctx.geometry
        n, c, out_h, out_w = grad_output.shape
        share = (grad_output / divisor)[:, :, None, None].expand(n, c, kh, kw, out_h, out_w)
        grad_input = col2im(share.reshape(n, c * kh * kw, out_h * out_w), size, (kh, kw), 1, padding, stride)
        return grad_input, None, None, None, None, None


def avg_pool2d(
    input: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Drop-in for ``F.avg_pool2d`` (``ceil_mode=False``) on ``[N, C, H, W]`` or ``[C, H, W]``."""
    kernel, stride, padding, _ = _pool_args(input, kernel_size, stride, padding)
    if divisor_override is not None and (
        not isinstance(divisor_override, int) or isinstance(divisor_override, bool) or divisor_override < 1
    ):
        raise ValueError(f"divisor_override: expected a positive int or None, got {divisor_override!r}")
    return _unbatched_call(AvgPool2dFunction, input, kernel, stride, padding, bool(count_include_pad), divisor_override)
