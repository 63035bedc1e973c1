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
    attention:       MACs   = B·h·L·S·(d_k + d_v)     (Q·Kᵀ and the weighted sum of V; the softmax is not counted)
    multi-head attn: MACs   = N·(L·E·E + S·k_dim·E + S·v_dim·E)  (the three input projections)
                              + N·L·S·2E  (attention: h heads of d = E/h)  + N·L·E·E  (out_proj, a Linear)
    encoder layer:   MACs   = MHA(L, L) + 2·N·L·D·F (FFN) + 2·5·N·L·D (two LayerNorms)
    decoder layer:   MACs   = MHA(L, L) + MHA(L, S) + 2·N·L·D·F + 3·5·N·L·D
    patch embedding: MACs   = N·(H/P)·(W/P)·D·P²·C   (a P×P convolution with stride P)
A depthwise-separable conv (k×k depthwise + 1×1 pointwise) costs 1/C_out + 1/k² of a standard conv.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from zoo.layers.attention import MultiheadAttention
from zoo.layers.swin import ShiftedWindowAttention

__all__ = [
    "adaptive_avg_pool_macs",
    "attention_macs",
    "batch_norm_macs",
    "conv2d_macs",
    "conv2d_output_size",
    "conv2d_params",
    "conv_transpose2d_macs",
    "layer_macs",
    "linear_macs",
    "module_own_macs",
    "multihead_attention_macs",
    "norm_macs",
    "patch_embed_macs",
    "transformer_decoder_layer_macs",
    "transformer_encoder_layer_macs",
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


def attention_macs(query_shape: Sequence[int], key_shape: Sequence[int], value_shape: Sequence[int]) -> int:
    """Q (…, L, d_k) · Kᵀ (…, d_k, S) and the weights (…, L, S) · V (…, S, d_v): (…)·L·S·(d_k + d_v)."""
    d_k, source, d_v = query_shape[-1], key_shape[-2], value_shape[-1]
    return _numel(query_shape[:-1]) * source * (d_k + d_v)


def multihead_attention_macs(
    batch: int, length: int, source: int, embed_dim: int, kdim: int | None = None, vdim: int | None = None
) -> int:
    """A whole multi-head attention call: input projections, attention over all heads, output projection.

    The head count does not appear: h heads of width E/h cost what one head of width E does.
    """
    kdim, vdim = kdim or embed_dim, vdim or embed_dim
    projections = batch * (length * embed_dim * embed_dim + source * kdim * embed_dim + source * vdim * embed_dim)
    return projections + batch * length * source * 2 * embed_dim + batch * length * embed_dim * embed_dim


def transformer_encoder_layer_macs(batch: int, length: int, d_model: int, dim_feedforward: int) -> int:
    """Self-attention, the two FFN linears and the two LayerNorms of one encoder layer."""
    ffn = 2 * batch * length * d_model * dim_feedforward
    return multihead_attention_macs(batch, length, length, d_model) + ffn + 2 * norm_macs((batch, length, d_model))


def transformer_decoder_layer_macs(batch: int, length: int, source: int, d_model: int, dim_feedforward: int) -> int:
    """Self-attention, cross-attention over ``source`` memory tokens, the FFN and three LayerNorms."""
    attention = multihead_attention_macs(batch, length, length, d_model)
    attention += multihead_attention_macs(batch, length, source, d_model)
    ffn = 2 * batch * length * d_model * dim_feedforward
    return attention + ffn + 3 * norm_macs((batch, length, d_model))


def patch_embed_macs(batch: int, height: int, width: int, patch_size: int, in_chans: int, embed_dim: int) -> int:
    """ViT's patch embedding: each of the (H/P)·(W/P) patches is projected linearly from P²·C to D."""
    return batch * (height // patch_size) * (width // patch_size) * embed_dim * patch_size * patch_size * in_chans


def module_own_macs(module: nn.Module, args: tuple, kwargs: dict) -> int | None:
    """MACs a module with children computes in its own ``forward`` (not in a child), from its call's arguments;
    ``None`` for modules whose work is all in their children.

    zoo's MultiheadAttention: its three input projections and the attention (``out_proj`` is a Linear child).
    Swin's ShiftedWindowAttention: the attention inside each M×M window of the map padded to multiples of M,
    (N·⌈H/M⌉·⌈W/M⌉ windows)·M²·M²·2C — linear in the image area (``qkv`` and ``proj`` are Linear children).
    """
    if isinstance(module, ShiftedWindowAttention):
        batch, height, width, channels = args[0].shape
        size = module.window_size
        windows = batch * -(-height // size) * -(-width // size)
        return windows * attention_macs((size * size, channels), (size * size, channels), (size * size, channels))
    if isinstance(module, MultiheadAttention):
        names = ("query", "key", "value")
        query, key, value = (args[i] if i < len(args) else kwargs[name] for i, name in enumerate(names))
        sequence_dim = 0 if query.ndim == 2 or not module.batch_first else 1  # (L, E), (L, N, E) or (N, L, E)
        batch = query.numel() // (query.shape[sequence_dim] * query.shape[-1])
        length, source = query.shape[sequence_dim], key.shape[sequence_dim]
        extra = int(module.bias_k is not None) + int(module.add_zero_attn)  # appended key/value tokens
        embed = module.embed_dim
        projections = batch * (length * embed * embed + source * (module.kdim + module.vdim) * embed)
        return projections + batch * length * (source + extra) * 2 * embed
    return None
