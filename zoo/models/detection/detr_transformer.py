"""DETR's encoder-decoder Transformer (Carion et al., 2020, §3.2 and Fig. 10): post-norm layers whose attention
is told where each token is by adding position embeddings to its queries and keys (never to its values).

Encoder layer, over the S = H·W feature cells x with their 2-D sine positions p:

    x = LN₁(x + Drop(SA(q = k = x + p, v = x)))
    x = LN₂(x + Drop(FFN(x))),          FFN(x) = W₂·Drop(ReLU(W₁x + b₁)) + b₂

Decoder layer, over the Q object slots t (zero at the first layer) with their learned query embeddings e, and
the encoder's output m ("memory"):

    t = LN₁(t + Drop(SA(q = k = t + e, v = t)))
    t = LN₂(t + Drop(CA(q = t + e, k = m + p, v = m)))
    t = LN₃(t + Drop(FFN(t)))

and a shared final LN after the decoder, applied to every layer's output for the auxiliary losses (the
decoder itself carries on from the un-normalised output). Padding cells are masked out of every attention over
the memory (``key_padding_mask``, True on padding). Attention is zoo's
:class:`~zoo.layers.attention.MultiheadAttention` (fused kernel: no attention weights are asked for).

Parameters per layer (D = d_model, F = FFN width): encoder 4D² + 4D + 2DF + F + D + 4D; decoder twice the
attention, 2DF + F + D and 6D; plus 2D for the final norm (D = 256, F = 2048: 1,315,072 and 1,578,752 per layer).
Dropout (0.1) is where the paper's code has it: on the attention weights, after the ReLU and on each residual
branch (HF's ``DetrConfig`` defaults keep only the residual ones: training differs, evaluation does not).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.layers.attention import MultiheadAttention

__all__ = ["DetrDecoderLayer", "DetrEncoderLayer", "DetrTransformer"]


def _with_position(x: Tensor, position: Tensor | None) -> Tensor:
    return x if position is None else x + position


class _FeedForward(nn.Module):
    """``Drop(W₂·Drop(ReLU(W₁x + b₁)) + b₂)``, with torch's layer names (``linear1``, ``linear2``)."""

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout_out = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout_out(self.linear2(self.dropout(F.relu(self.linear1(x)))))


class DetrEncoderLayer(nn.Module):
    """One encoder layer (module docstring); tokens are batch-first ``[N, S, D]``."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.feed_forward = _FeedForward(d_model, dim_feedforward, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, position: Tensor | None = None, padding_mask: Tensor | None = None) -> Tensor:
        query = _with_position(x, position)
        attended = self.self_attn(query, query, x, key_padding_mask=padding_mask, need_weights=False)[0]
        x = self.norm1(x + self.dropout(attended))
        return self.norm2(x + self.feed_forward(x))


class DetrDecoderLayer(nn.Module):
    """One decoder layer (module docstring): object slots ``[N, Q, D]`` attend to themselves, then to the memory."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.cross_attn = MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.feed_forward = _FeedForward(d_model, dim_feedforward, dropout)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(
        self,
        slots: Tensor,
        memory: Tensor,
        query_position: Tensor,
        memory_position: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
    ) -> Tensor:
        query = slots + query_position
        attended = self.self_attn(query, query, slots, need_weights=False)[0]
        slots = self.norm1(slots + self.dropout1(attended))
        attended = self.cross_attn(
            slots + query_position,
            _with_position(memory, memory_position),
            memory,
            key_padding_mask=memory_padding_mask,
            need_weights=False,
        )[0]
        slots = self.norm2(slots + self.dropout2(attended))
        return self.norm3(slots + self.feed_forward(slots))


class DetrTransformer(nn.Module):
    """The encoder and decoder stacks and the decoder's final norm (module docstring).

    ``forward(features, position, padding_mask, query_embedding)``: features and positions ``[N, S, D]``, the
    padding mask ``[N, S]`` (True on padding) and the learned query embeddings ``[Q, D]`` → the normalised
    decoder outputs of every layer, ``[L, N, Q, D]`` (the last is the model's; the others feed the auxiliary
    losses). With ``return_intermediate=False`` only the last, as ``[1, N, Q, D]``.
    """

    def __init__(
        self,
        d_model: int = 256,
        num_heads: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        for name, value in (
            ("d_model", d_model),
            ("num_heads", num_heads),
            ("num_encoder_layers", num_encoder_layers),
            ("num_decoder_layers", num_decoder_layers),
            ("dim_feedforward", dim_feedforward),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        layer_args = (d_model, num_heads, dim_feedforward, dropout)
        self.encoder = nn.ModuleList(DetrEncoderLayer(*layer_args) for _ in range(num_encoder_layers))
        self.decoder = nn.ModuleList(DetrDecoderLayer(*layer_args) for _ in range(num_decoder_layers))
        self.decoder_norm = nn.LayerNorm(d_model)
        self.d_model = d_model
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # The paper's code: Xavier-uniform for every weight matrix of the Transformer.
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    def forward(
        self,
        features: Tensor,
        position: Tensor,
        padding_mask: Tensor | None,
        query_embedding: Tensor,
        return_intermediate: bool = True,
    ) -> Tensor:
        memory = features
        for layer in self.encoder:
            memory = layer(memory, position, padding_mask)
        query_position = query_embedding.unsqueeze(0).expand(len(features), -1, -1)
        slots = query_position.new_zeros(query_position.shape)
        outputs = []
        for index, layer in enumerate(self.decoder):
            slots = layer(slots, memory, query_position, position, padding_mask)
            if return_intermediate or index == len(self.decoder) - 1:
                outputs.append(self.decoder_norm(slots))
        return torch.stack(outputs)
