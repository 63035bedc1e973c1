"""2-D convolution as im2col + matrix multiply, equal to ``torch.nn.functional.conv2d``.

im2col lays every receptive field of the zero-padded input out as a column,

    cols[n, (c, i, j), (y, x)] = x_pad[n, c, y * s_h + i * d_h, x * s_w + j * d_w]       shape [N, C·k_h·k_w, L]

(``L = H_out · W_out``, the same layout as ``F.unfold``), so a convolution with ``groups = G`` is one batched
matrix product per group,

    out[n, g] = W[g] @ cols[n, g] + b          W[g]: [C_out/G, C_in/G·k_h·k_w],  cols[n, g]: [C_in/G·k_h·k_w, L]

col2im is its adjoint (``F.fold``): every column entry is *added* back to the pixel it was read from, which is
exactly the gradient of im2col and the "transposed convolution" scatter.

The windows are a strided view of the padded input (no copy, no loop over pixels); col2im scatters with one
``index_add_``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.fundamentals._common import as_pair, check_tensor, window_output_size

__all__ = ["sliding_windows", "im2col", "col2im", "check_conv2d_args", "conv2d_im2col"]

IntPair = int | Sequence[int]


def sliding_windows(
    input: Tensor, kernel_size: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> Tensor:
    """Every ``kernel_size`` window of an (already padded) ``[N, C, H, W]`` tensor as a strided view of shape
    ``[N, C, k_h, k_w, H_out, W_out]``; the caller checks the arguments."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    oh, ow = window_output_size(input.shape[-2:], kernel_size, stride, (0, 0), dilation)
    n_stride, c_stride, h_stride, w_stride = input.stride()
    return input.as_strided(
        (input.shape[0], input.shape[1], kh, kw, oh, ow),
        (n_stride, c_stride, dh * h_stride, dw * w_stride, sh * h_stride, sw * w_stride),
        input.storage_offset(),
    )


def im2col(
    input: Tensor, kernel_size: IntPair, dilation: IntPair = 1, padding: IntPair = 0, stride: IntPair = 1
) -> Tensor:
    """``[N, C, H, W] -> [N, C·k_h·k_w, L]``, the receptive fields as columns (same signature and layout as
    ``F.unfold``); zero padding."""
    check_tensor(input, "input", (4,), floating=False)
    kernel_size = as_pair(kernel_size, "kernel_size", minimum=1)
    dilation = as_pair(dilation, "dilation", minimum=1)
    padding = as_pair(padding, "padding", minimum=0)
    stride = as_pair(stride, "stride", minimum=1)
    window_output_size(input.shape[-2:], kernel_size, stride, padding, dilation)
    padded = F.pad(input, (padding[1], padding[1], padding[0], padding[0]))
    windows = sliding_windows(padded, kernel_size, stride, dilation)
    n, c, kh, kw, oh, ow = windows.shape
    return windows.reshape(n, c * kh * kw, oh * ow)


def col2im(
    input: Tensor,
    output_size: IntPair,
    kernel_size: IntPair,
    dilation: IntPair = 1,
    padding: IntPair = 0,
    stride: IntPair = 1,
) -> Tensor:
    """``[N, C·k_h·k_w, L] -> [N, C, H, W]``, summing overlapping entries (the adjoint of :func:`im2col`; same
    signature as ``F.fold``)."""
    check_tensor(input, "input", (3,), floating=False)
    height, width = as_pair(output_size, "output_size", minimum=1)
    kh, kw = kernel_size = as_pair(kernel_size, "kernel_size", minimum=1)
    dh, dw = dilation = as_pair(dilation, "dilation", minimum=1)
    ph, pw = padding = as_pair(padding, "padding", minimum=0)
    sh, sw = stride = as_pair(stride, "stride", minimum=1)
    oh, ow = window_output_size((height, width), kernel_size, stride, padding, dilation)
    n, rows, length = input.shape
    if rows % (kh * kw) or length != oh * ow:
        raise ValueError(
            f"input: expected shape [N, C*{kh}*{kw}, {oh * ow}] for output_size {(height, width)}, "
            f"got {list(input.shape)}"
        )
    padded_w = width + 2 * pw
    # Flat index, in the padded image, of the pixel each (i, j, y, x) column entry was read from.
    rows_idx = (torch.arange(kh, device=input.device) * dh)[:, None] + torch.arange(oh, device=input.device) * sh
    cols_idx = (torch.arange(kw, device=input.device) * dw)[:, None] + torch.arange(ow, device=input.device) * sw
    flat = rows_idx[:, None, :, None] * padded_w + cols_idx[None, :, None, :]  # [kh, kw, oh, ow]
    channels = rows // (kh * kw)
    out = input.new_zeros(n, channels, (height + 2 * ph) * padded_w)
    out.index_add_(2, flat.reshape(-1), input.reshape(n, channels, -1))
    out = out.view(n, channels, height + 2 * ph, padded_w)
    return out[:, :, ph : ph + height, pw : pw + width]


def check_conv2d_args(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: IntPair,
    padding: IntPair,
    dilation: IntPair,
    groups: int,
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Validate ``F.conv2d``'s arguments for a ``[N, C, H, W]`` or ``[C, H, W]`` input; return
    ``(stride, padding, dilation)`` as pairs."""
    check_tensor(input, "input", (3, 4))
    check_tensor(weight, "weight", (4,))
    if weight.dtype != input.dtype:
        raise TypeError(f"weight: expected dtype {input.dtype} (the input's), got {weight.dtype}")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups: expected a positive int, got {groups!r}")
    out_channels, in_per_group = weight.shape[:2]
    if out_channels % groups:
        raise ValueError(f"weight: {out_channels} output channels are not divisible by groups={groups}")
    if input.shape[-3] != in_per_group * groups:
        raise ValueError(
            f"input: expected {in_per_group * groups} channels (weight.shape[1]={in_per_group} x groups={groups}), "
            f"got {input.shape[-3]}"
        )
    if bias is not None:
        check_tensor(bias, "bias", (1,))
        if bias.shape[0] != out_channels or bias.dtype != input.dtype:
            raise ValueError(
                f"bias: expected shape [{out_channels}] and dtype {input.dtype}, got {list(bias.shape)} {bias.dtype}"
            )
    stride = as_pair(stride, "stride", minimum=1)
    padding = as_pair(padding, "padding", minimum=0)
    dilation = as_pair(dilation, "dilation", minimum=1)
    window_output_size(input.shape[-2:], weight.shape[-2:], stride, padding, dilation)
    return stride, padding, dilation


def conv2d_im2col(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor:
    """Drop-in for ``F.conv2d`` (numeric padding only): im2col, then one batched matmul over the groups.

    ``input`` is ``[N, C_in, H, W]`` (or unbatched ``[C_in, H, W]``), ``weight`` ``[C_out, C_in/groups, k_h, k_w]``.
    """
    stride, padding, dilation = check_conv2d_args(input, weight, bias, stride, padding, dilation, groups)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    out_channels, _, kh, kw = weight.shape
    cols = im2col(x, (kh, kw), dilation, padding, stride)
    n, rows, length = cols.shape
    # [1, G, C_out/G, K] @ [N, G, K, L] -> [N, G, C_out/G, L]
    out = weight.reshape(1, groups, out_channels // groups, -1) @ cols.reshape(n, groups, rows // groups, length)
    out = out.reshape(n, out_channels, *window_output_size(x.shape[-2:], (kh, kw), stride, padding, dilation))
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out.squeeze(0) if unbatched else out
