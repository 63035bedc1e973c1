"""The Transformer (Vaswani et al., 2017, arXiv:1706.03762) with ``torch.nn``'s interfaces and state_dict names.

Encoder layer, post-norm (the paper, ``norm_first=False``) and pre-norm (``norm_first=True``, as ViT and most
models since GPT-2, which train deeper stacks without warm-up tricks):
    post-norm:  x = LN₁(x + SA(x));          x = LN₂(x + FFN(x))
    pre-norm:   x = x + SA(LN₁(x));          x = x + FFN(LN₂(x))
with SA multi-head self-attention and FFN(x) = W₂·act(W₁·x + b₁) + b₂ (ReLU or GELU, d_model → d_ff → d_model).
The decoder layer adds cross-attention CA between self-attention and the FFN, its queries from the decoder and
its keys and values from the encoder's output (the memory):  x = LN₂(x + CA(x, memory)).

Parameters per layer (D = d_model, F = dim_feedforward, biases on):
    encoder:  4·D² + 4·D (attention) + 2·D·F + F + D (FFN) + 4·D (two LayerNorms)
    decoder:  2·(4·D² + 4·D) + 2·D·F + F + D + 6·D
Multiply-adds for L tokens attending to S (S = L for self-attention): attention 2·L·D² + 2·S·D² + 2·L·S·D,
FFN 2·L·D·F.

Masks follow torch.nn: ``*_mask`` (L, S) or (N·h, L, S) and ``*_key_padding_mask`` (N, S), True or −∞ = not
attended; ``Transformer.generate_square_subsequent_mask(L)`` is the causal mask of the decoder.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers.attention import MultiheadAttention

__all__ = [
    "Transformer",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
]

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def _activation(activation: str | Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    if callable(activation):
        return activation
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)} or a callable, got {activation!r}")
    return _ACTIVATIONS[activation]


def _causal_hint(mask: torch.Tensor | None, is_causal: bool) -> bool:
    """torch.nn's ``is_causal`` is a hint about ``mask``; without a mask there is nothing to hint at."""
    if is_causal and mask is None:
        raise ValueError("is_causal=True is a hint about the mask: give the causal mask too")
    return is_causal


class _LayerParts(nn.Module):
    """The parts both layers share (self-attention with its dropout, the position-wise feed-forward), kept in a
    base class so the layers keep torch's flat state_dict names."""

    def _self_attention(self, x, mask, key_padding_mask, is_causal) -> torch.Tensor:
        x = self.self_attn(
            x, x, x, attn_mask=mask, key_padding_mask=key_padding_mask, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout1(x)

    def _init_feedforward(self, d_model, dim_feedforward, dropout, activation, bias, factory) -> None:
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.activation = _activation(activation)

    def _feedforward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


def _check_layer_args(d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
    for name, value in (("d_model", d_model), ("nhead", nhead), ("dim_feedforward", dim_feedforward)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")


class TransformerEncoderLayer(_LayerParts):
    """Self-attention and feed-forward, each with a residual and a LayerNorm (``torch.nn.TransformerEncoderLayer``)."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[torch.Tensor], torch.Tensor] = F.relu,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        _check_layer_args(d_model, nhead, dim_feedforward, dropout)
        factory = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, fused_attn=fused_attn, **factory
        )
        self._init_feedforward(d_model, dim_feedforward, dropout, activation, bias, factory)
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        is_causal = _causal_hint(src_mask, is_causal)
        x = src
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self.dropout2(self._feedforward(self.norm2(x)))
        x = self.norm1(x + self._self_attention(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self.dropout2(self._feedforward(x)))


class TransformerDecoderLayer(_LayerParts):
    """Self-attention, cross-attention over the memory, and feed-forward (``torch.nn.TransformerDecoderLayer``)."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[torch.Tensor], torch.Tensor] = F.relu,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        _check_layer_args(d_model, nhead, dim_feedforward, dropout)
        factory = {"device": device, "dtype": dtype}
        attention_args = {"dropout": dropout, "bias": bias, "batch_first": batch_first, "fused_attn": fused_attn}
        self.self_attn = MultiheadAttention(d_model, nhead, **attention_args, **factory)
        self.multihead_attn = MultiheadAttention(d_model, nhead, **attention_args, **factory)
        self._init_feedforward(d_model, dim_feedforward, dropout, activation, bias, factory)
        self.norm_first = norm_first
        self.norm1, self.norm2, self.norm3 = (
            nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory) for _ in range(3)
        )
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))

    def _cross_attention(self, x, memory, mask, key_padding_mask, is_causal) -> torch.Tensor:
        x = self.multihead_attn(
            x,
            memory,
            memory,
            attn_mask=mask,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            is_causal=is_causal,
        )[0]
        return self.dropout2(x)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        tgt_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> torch.Tensor:
        tgt_is_causal = _causal_hint(tgt_mask, tgt_is_causal)
        memory_is_causal = _causal_hint(memory_mask, memory_is_causal)
        x = tgt
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._cross_attention(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            return x + self.dropout3(self._feedforward(self.norm3(x)))
        x = self.norm1(x + self._self_attention(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._cross_attention(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
        return self.norm3(x + self.dropout3(self._feedforward(x)))


def _clones(layer: nn.Module, num_layers: int) -> nn.ModuleList:
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive int, got {num_layers!r}")
    return nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))


class TransformerEncoder(nn.Module):
    """``num_layers`` copies of ``encoder_layer`` and an optional final ``norm`` (``torch.nn.TransformerEncoder``).

    Padded positions are computed like the others (torch's eval fast path, with ``enable_nested_tensor``,
    returns zeros there instead); read only the unpadded outputs.
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: nn.Module | None = None) -> None:
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self,
        src: torch.Tensor,
        mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool | None = None,
    ) -> torch.Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return self.norm(x) if self.norm is not None else x


class TransformerDecoder(nn.Module):
    """``num_layers`` copies of ``decoder_layer`` and an optional final ``norm`` (``torch.nn.TransformerDecoder``)."""

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: nn.Module | None = None) -> None:
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        tgt_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> torch.Tensor:
        x = tgt
        for layer in self.layers:
            x = layer(
                x,
                memory,
                tgt_mask=tgt_mask,
                memory_mask=memory_mask,
                tgt_key_padding_mask=tgt_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
                tgt_is_causal=bool(tgt_is_causal),
                memory_is_causal=memory_is_causal,
            )
        return self.norm(x) if self.norm is not None else x


class Transformer(nn.Module):
    """The encoder–decoder of the paper (``torch.nn.Transformer``): 6 + 6 layers, d_model 512, 8 heads, FFN 2048.

    Every weight matrix starts Xavier-uniform, as torch's does. ``forward(src, tgt)`` returns the decoder's
    output, one vector per target position.
    """

    def __init__(
        self,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[torch.Tensor], torch.Tensor] = F.relu,
        custom_encoder: nn.Module | None = None,
        custom_decoder: nn.Module | None = None,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        layer_args = {
            "dim_feedforward": dim_feedforward,
            "dropout": dropout,
            "activation": activation,
            "layer_norm_eps": layer_norm_eps,
            "batch_first": batch_first,
            "norm_first": norm_first,
            "bias": bias,
            "fused_attn": fused_attn,
            **factory,
        }
        self.encoder = custom_encoder or TransformerEncoder(
            TransformerEncoderLayer(d_model, nhead, **layer_args),
            num_encoder_layers,
            nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory),
        )
        self.decoder = custom_decoder or TransformerDecoder(
            TransformerDecoderLayer(d_model, nhead, **layer_args),
            num_decoder_layers,
            nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory),
        )
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    @staticmethod
    def generate_square_subsequent_mask(size: int, device=None, dtype=None) -> torch.Tensor:
        """The (size, size) causal mask: 0 on and below the diagonal, −∞ above (position i sees 0…i)."""
        mask = torch.full((size, size), float("-inf"), device=device, dtype=dtype or torch.float32)
        return mask.triu(diagonal=1)

    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        tgt_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        src_is_causal: bool | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> torch.Tensor:
        batch_dim = 0 if self.batch_first else 1
        if src.ndim == 3 and tgt.ndim == 3 and src.shape[batch_dim] != tgt.shape[batch_dim]:
            raise ValueError(
                f"src and tgt must have the same batch size, got {src.shape[batch_dim]} and {tgt.shape[batch_dim]}"
            )
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(
                f"src and tgt must have d_model = {self.d_model} features, got {src.shape[-1]} and {tgt.shape[-1]}"
            )
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(
            tgt,
            memory,
            tgt_mask=tgt_mask,
            memory_mask=memory_mask,
            tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
            tgt_is_causal=tgt_is_causal,
            memory_is_causal=memory_is_causal,
        )
