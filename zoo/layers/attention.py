"""Scaled dot-product attention and multi-head attention (Vaswani et al., 2017, arXiv:1706.03762).

    Attention(Q, K, V) = softmax(Q·Kᵀ / √d_k + M) · V

Q (…, L, d_k) holds one query per output position, K (…, S, d_k) and V (…, S, d_v) one key and one value per
input position: each output is the average of the values, weighted by how well its query matches each key.
Why divide by √d_k: for q and k with independent unit-variance components, q·k = Σᵢ qᵢkᵢ has variance d_k, so
without the scale the scores grow with the head width and the softmax saturates (one weight near 1, the rest
near 0, and vanishing gradients); dividing by √d_k gives the scores unit variance at any width.

M is the mask, with ``F.scaled_dot_product_attention``'s conventions: a boolean mask is True where a query may
attend (False becomes −∞), a float mask is added to the scores, ``is_causal`` masks every key after its query.

Multi-head attention projects the inputs h times into d_k = E / h wide heads, attends in each, and projects the
concatenation back:  MHA(Q, K, V) = Concat(head₁…head_h)·W_O,  headᵢ = Attention(Q·W_Qᵢ, K·W_Kᵢ, V·W_Vᵢ).
Several heads let the layer attend to several positions for several reasons at once for the cost of one
full-width head. Parameters (E = embed_dim, bias): 4·E² + 4·E; multiply-adds for L queries and S keys:
L·E² (Q) + 2·S·E² (K, V, kdim = vdim = E) + 2·L·S·E (scores and weighted sum over all heads) + L·E² (output).

Models call :func:`attention`, which runs PyTorch's fused kernel (flash / memory-efficient on GPUs) unless
``fused=False`` picks the hand-written :func:`scaled_dot_product_attention`; both give the same result.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiheadAttention", "attention", "scaled_dot_product_attention"]


def _check_mask(attn_mask: torch.Tensor, scores_shape: tuple[int, ...], what: str = "attn_mask") -> None:
    if not isinstance(attn_mask, torch.Tensor):
        raise TypeError(
            f"{what} must be a tensor (bool: True = attend, or float: added), got {type(attn_mask).__name__}"
        )
    if attn_mask.dtype != torch.bool and not attn_mask.is_floating_point():
        raise TypeError(f"{what} must be a bool or floating-point tensor, got dtype {attn_mask.dtype}")
    try:
        torch.broadcast_shapes(attn_mask.shape, scores_shape)
    except RuntimeError:
        raise ValueError(
            f"{what} of shape {tuple(attn_mask.shape)} does not broadcast to the attention scores' shape "
            f"{tuple(scores_shape)} (…, L queries, S keys)"
        ) from None


def _check_qkv(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
    for name, tensor in (("query", query), ("key", key), ("value", value)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a tensor of shape (..., length, features), got {type(tensor).__name__}")
        if tensor.ndim < 2:
            raise ValueError(f"{name} must have shape (..., length, features), got shape {tuple(tensor.shape)}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"query and key must have the same feature size d_k, got {query.shape[-1]} and {key.shape[-1]}"
        )
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(
            f"key and value must have the same length S (one value per key), got {key.shape[-2]} and {value.shape[-2]}"
        )


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """softmax(Q·Kᵀ·scale + M)·V written out, with ``F.scaled_dot_product_attention``'s signature and masks.

    ``query`` (…, L, E), ``key`` (…, S, E), ``value`` (…, S, Ev) → (…, L, Ev); ``scale`` defaults to 1/√E.
    A query whose keys are all masked gets NaN, as PyTorch's math path gives.
    """
    _check_qkv(query, key, value)
    scores = query @ key.transpose(-2, -1) * (1.0 / math.sqrt(query.shape[-1]) if scale is None else scale)
    if is_causal:
        if attn_mask is not None:
            raise ValueError("give attn_mask or is_causal=True, not both")
        length, source = scores.shape[-2:]
        attn_mask = torch.ones(length, source, dtype=torch.bool, device=scores.device).tril()
    if attn_mask is not None:
        _check_mask(attn_mask, scores.shape)
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ value


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    *,
    fused: bool = True,
) -> torch.Tensor:
    """Scaled dot-product attention through PyTorch's fused kernel (``fused=True``) or the hand-written one."""
    if fused:
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale
        )
    return scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale)


class MultiheadAttention(nn.Module):
    """Multi-head attention with ``torch.nn.MultiheadAttention``'s constructor, state_dict and forward.

    Parameters are packed as torch's are: ``in_proj_weight`` (3E, E) and ``in_proj_bias`` when key and value
    have the query's width, else ``q_proj_weight``, ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim);
    ``bias_k``/``bias_v`` with ``add_bias_kv``; ``out_proj`` a Linear. ``forward`` returns ``(output, weights)``
    where ``weights`` (N, L, S) — averaged over heads, or (N, h, L, S) with ``average_attn_weights=False`` — is
    given only for ``need_weights=True``; without it the fused kernel runs (``fused_attn=False``: the
    hand-written one).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device=None,
        dtype=None,
        *,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim must be divisible by num_heads (each head is embed_dim / num_heads wide), got "
                f"embed_dim={embed_dim} and num_heads={num_heads}"
            )
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        factory = {"device": device, "dtype": dtype}
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first, self.add_zero_attn, self.fused_attn = (
            dropout,
            batch_first,
            add_zero_attn,
            fused_attn,
        )
        if self._qkv_same_embed_dim:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **factory))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = nn.Parameter(torch.empty(embed_dim, embed_dim, **factory))
            self.k_proj_weight = nn.Parameter(torch.empty(embed_dim, self.kdim, **factory))
            self.v_proj_weight = nn.Parameter(torch.empty(embed_dim, self.vdim, **factory))
            self.register_parameter("in_proj_weight", None)
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **factory)) if bias else None
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        if add_bias_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, embed_dim, **factory))
            self.bias_v = nn.Parameter(torch.empty(1, 1, embed_dim, **factory))
        else:
            self.bias_k = self.bias_v = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's initialisation: Xavier-uniform projections, zero biases, normal bias_k / bias_v."""
        for weight in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            if weight is not None:
                nn.init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)
        for extra in (self.bias_k, self.bias_v):
            if extra is not None:
                nn.init.xavier_normal_(extra)

    def _projections(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._qkv_same_embed_dim:
            return self.in_proj_weight.chunk(3)
        return self.q_proj_weight, self.k_proj_weight, self.v_proj_weight

    def _check_inputs(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
        layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
        for name, tensor, width in (
            ("query", query, self.embed_dim),
            ("key", key, self.kdim),
            ("value", value, self.vdim),
        ):
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"{name} must be a tensor of shape {layout}, got {type(tensor).__name__}")
            if tensor.ndim not in (2, 3) or tensor.shape[-1] != width:
                raise ValueError(
                    f"{name} must have shape {layout} (or unbatched (L, E)) with E = {width}, got {tuple(tensor.shape)}"
                )
        if not query.ndim == key.ndim == value.ndim:
            raise ValueError(
                "query, key and value must all be batched or all unbatched, got "
                f"{query.ndim}-D, {key.ndim}-D, {value.ndim}-D"
            )
        seq = 1 if self.batch_first and query.ndim == 3 else 0
        if key.shape[seq] != value.shape[seq]:
            raise ValueError(f"key and value must have the same length S, got {key.shape[seq]} and {value.shape[seq]}")
        if query.ndim == 3 and not query.shape[1 - seq] == key.shape[1 - seq] == value.shape[1 - seq]:
            raise ValueError(
                f"query, key and value must have the same batch size, got {query.shape[1 - seq]}, "
                f"{key.shape[1 - seq]}, {value.shape[1 - seq]}"
            )

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        self._check_inputs(query, key, value)
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None and key_padding_mask.ndim == 1:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        batch, length, source = query.shape[0], query.shape[1], key.shape[1]
        if is_causal and attn_mask is None:
            raise ValueError("is_causal=True needs the causal attn_mask too (as torch.nn.MultiheadAttention)")

        w_q, w_k, w_v = self._projections()
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        q, k, v = F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
        mask = self._merge_masks(attn_mask, key_padding_mask, batch, length, source, q.dtype)
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(batch, 1, -1)], dim=1)
            v = torch.cat([v, self.bias_v.expand(batch, 1, -1)], dim=1)
            mask = F.pad(mask, (0, 1)) if mask is not None else None
        if self.add_zero_attn:
            k = torch.cat([k, k.new_zeros(batch, 1, self.embed_dim)], dim=1)
            v = torch.cat([v, v.new_zeros(batch, 1, self.embed_dim)], dim=1)
            mask = F.pad(mask, (0, 1)) if mask is not None else None

        # (N, L, E) → (N, h, L, d): one attention per head.
        q, k, v = (t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2) for t in (q, k, v))
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
            if mask is not None:
                scores = scores + mask
            weights = scores.softmax(dim=-1)
            out = F.dropout(weights, p=dropout_p) @ v if dropout_p else weights @ v
            weights = weights.mean(dim=1) if average_attn_weights else weights
        else:
            out = attention(q, k, v, mask, dropout_p, fused=self.fused_attn)
        out = self.out_proj(out.transpose(1, 2).flatten(2))
        if unbatched:
            return out.squeeze(0), weights.squeeze(0) if weights is not None else None
        return (out if self.batch_first else out.transpose(0, 1)), weights

    def _merge_masks(
        self,
        attn_mask: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None,
        batch: int,
        length: int,
        source: int,
        dtype: torch.dtype,
    ) -> torch.Tensor | None:
        """One float mask (N, h or 1, L, S) from ``attn_mask`` ((L, S) or (N·h, L, S)) and ``key_padding_mask``
        ((N, S)); torch's convention for both: a True entry is NOT attended, a float entry is added."""
        merged = None
        if attn_mask is not None:
            if attn_mask.dtype != torch.bool and not attn_mask.is_floating_point():
                raise TypeError(f"attn_mask must be a bool or floating-point tensor, got dtype {attn_mask.dtype}")
            if attn_mask.shape not in ((length, source), (batch * self.num_heads, length, source)):
                raise ValueError(
                    f"attn_mask must have shape (L, S) = {(length, source)} or (N·num_heads, L, S) = "
                    f"{(batch * self.num_heads, length, source)}, got {tuple(attn_mask.shape)}"
                )
            merged = _as_float_mask(attn_mask, dtype)
            merged = (
                merged.view(batch, self.num_heads, length, source)
                if merged.ndim == 3
                else merged.view(1, 1, length, source)
            )
        if key_padding_mask is not None:
            if key_padding_mask.dtype != torch.bool and not key_padding_mask.is_floating_point():
                raise TypeError(
                    f"key_padding_mask must be a bool or floating-point tensor, got dtype {key_padding_mask.dtype}"
                )
            if key_padding_mask.shape != (batch, source):
                raise ValueError(
                    f"key_padding_mask must have shape (N, S) = {(batch, source)}, got {tuple(key_padding_mask.shape)}"
                )
            padding = _as_float_mask(key_padding_mask, dtype).view(batch, 1, 1, source)
            merged = padding if merged is None else merged + padding
        return merged


def _as_float_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """torch.nn's masks: True (masked out) → −∞, False → 0; a float mask is used as it is."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)
