"""Closed-form parameter and multiply-add (MAC) counts per layer type, from hyperparameters and the
input shape alone. They follow fvcore's conventions, so that the two independent counts of a model
must agree exactly:

    conv:            params = C_out·(k_h·k_w·C_in/g) (+ C_out bias)
                     MACs   = N·H_out·W_out·C_out·k_h·k_w·C_in/g
                     H_out  = ⌊(H + 2p − d·(k − 1) − 1)/s⌋ + 1            (bias adds are not counted)
    transposed conv: MACs   = N·H_in·W_in·C_in·k_h·k_w·C_out/g             (every input pixel scatters a kernel)
    linear:          MACs   = rows·in_features·out_features
    batch norm:      MACs   = numel·2 with affine γ, β, else numel          (eval: one scale, one shift)
    group/layer norm MACs   = numel·5 with affine, else numel·4            (fvcore's estimate)
    adaptive avg pool MACs  = numel of the input                            (one add per input element)
    upsample         MACs   = numel of the output · (1 nearest, 4 bilinear)
A depthwise-separable conv (k×k depthwise + 1×1 pointwise) costs 1/C_out + 1/k² of a standard conv.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = [
    "adaptive_avg_pool_macs",
    "batch_norm_macs",
    "conv2d_macs",
    "conv2d_output_size",
    "conv2d_params",
    "conv_transpose2d_macs",
    "layer_macs",
    "linear_macs",
    "norm_macs",
    "upsample_macs",
]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def conv2d_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_params(c_in: int, c_out: int, kernel: int | Sequence[int], groups: int = 1, bias: bool = False) -> int:
    kh, kw = _pair(kernel)
    return c_out * kh * kw * c_in // groups + (c_out if bias else 0)


def conv2d_macs(
    input_shape: Sequence[int],
    c_out: int,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> int:
    n, c_in, h, w = input_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _pair(kernel), _pair(stride), _pair(padding), _pair(dilation)
    h_out = conv2d_output_size(h, kh, sh, ph, dh)
    w_out = conv2d_output_size(w, kw, sw, pw, dw)
    return n * h_out * w_out * c_out * kh * kw * c_in // groups


def conv_transpose2d_macs(input_shape: Sequence[int], c_out: int, kernel: int | Sequence[int], groups: int = 1) -> int:
    n, c_in, h, w = input_shape
    kh, kw = _pair(kernel)
    return n * h * w * c_in * kh * kw * c_out // groups


def linear_macs(input_shape: Sequence[int], out_features: int) -> int:
    rows = 1
    for dim in input_shape[:-1]:
        rows *= dim
    return rows * input_shape[-1] * out_features


def _numel(shape: Sequence[int]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def batch_norm_macs(input_shape: Sequence[int], affine: bool = True) -> int:
    return _numel(input_shape) * (2 if affine else 1)


def norm_macs(input_shape: Sequence[int], affine: bool = True) -> int:
    return _numel(input_shape) * (5 if affine else 4)


def adaptive_avg_pool_macs(input_shape: Sequence[int]) -> int:
    return _numel(input_shape)


def upsample_macs(output_shape: Sequence[int], mode: str) -> int:
    per_element = {"nearest": 1, "bilinear": 4}
    if mode not in per_element:
        raise ValueError(f"no closed form for upsampling mode {mode!r}; expected one of {sorted(per_element)}")
    return _numel(output_shape) * per_element[mode]


def layer_macs(module: nn.Module, input_shape: Sequence[int], output_shape: Sequence[int]) -> int | None:
    """MACs of one call of a leaf ``module``; ``None`` for layer types without a formula (counted as 0
    by fvcore too, e.g. activations and max-pooling)."""
    if isinstance(module, nn.Conv2d):
        return conv2d_macs(
            input_shape, module.out_channels, module.kernel_size, module.stride,
            module.padding, module.dilation, module.groups,
        )  # fmt: skip
    if isinstance(module, nn.ConvTranspose2d):
        return conv_transpose2d_macs(input_shape, module.out_channels, module.kernel_size, module.groups)
    if isinstance(module, nn.Linear):
        return linear_macs(input_shape, module.out_features)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if module.training or not module.track_running_stats:  # batch statistics: a full normalisation
            return norm_macs(input_shape, module.affine)
        return batch_norm_macs(input_shape, module.affine)
    if isinstance(module, nn.GroupNorm):
        return norm_macs(input_shape, module.affine)
    if isinstance(module, nn.LayerNorm):
        return norm_macs(input_shape, module.elementwise_affine)
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return adaptive_avg_pool_macs(input_shape)
    if isinstance(module, nn.Upsample):
        return upsample_macs(output_shape, module.mode)
    return None
