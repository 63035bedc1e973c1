"""Position encodings: what tells an attention layer, which sees its inputs as a set, where each input is.

Sinusoidal (Vaswani et al., 2017, "Attention Is All You Need", §3.5), for a position p and a width d:

    PE(p, 2i)     = sin(p / T^(2i/d))
    PE(p, 2i + 1) = cos(p / T^(2i/d)),        i = 0 … d/2 − 1,   T = 10000

so that each pair (2i, 2i + 1) turns at its own frequency, from one turn per 2π positions (i = 0) to one per
2π·T; PE(p + k) is a linear function (a rotation per pair) of PE(p), whatever p.

Learned (Gehring et al., 2017; BERT, ViT): one trained vector per position index, ``nn.Embedding``.

Two-dimensional sine (Carion et al., 2020, "End-to-End Object Detection with Transformers" (DETR), §3.2 and
its code): for an image mask M (1 on the image, 0 on the padding of a batch), the position of pixel (y, x) is
counted over the image's own pixels and, normalised, spans (0, s] on every image whatever its size:

    y' = s · Σ_{k≤y} M[k, x] / (Σ_k M[k, x] + ε),     x' = s · Σ_{k≤x} M[y, k] / (Σ_k M[y, k] + ε)
    PE(y, x) = [PE_F(y'), PE_F(x')]     (2F channels: F for the row, then F for the column)

with PE_F the sinusoidal encoding above of width F, s = 2π, ε = 1e-6 and T = 10000 (DETR: F = d_model / 2).
Without normalisation y' and x' are the counts themselves (1, 2, …).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["LearnedPositionEmbedding", "SinePositionEmbedding2d", "SinusoidalPositionalEncoding"]


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class SinusoidalPositionalEncoding(nn.Module):
    """The sinusoidal encoding of Vaswani et al. (module docstring): ``forward(positions)`` maps positions of any
    shape (integers or reals) to ``[..., embed_dim]``, sin at even channels and cos at odd ones.

    No parameters; about 2·d operations per position.
    """

    def __init__(self, embed_dim: int, temperature: float = 10000.0) -> None:
        super().__init__()
        _check_positive_int(embed_dim, "embed_dim")
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even (sin and cos channels come in pairs), got {embed_dim}")
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature > 0:
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        self.embed_dim = embed_dim
        self.temperature = float(temperature)

    def wavelengths(self, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> Tensor:
        """``[embed_dim]``: T^(2⌊k/2⌋/d) for channel k, the divisor of the position in channel k."""
        pair = torch.arange(self.embed_dim, device=device).div(2, rounding_mode="floor").to(dtype)
        return self.temperature ** (2 * pair / self.embed_dim)

    def forward(self, positions: Tensor) -> Tensor:
        if not isinstance(positions, Tensor):
            raise TypeError(f"positions must be a tensor, got {type(positions).__name__}")
        dtype = positions.dtype if positions.is_floating_point() else torch.float32
        angles = positions.to(dtype)[..., None] / self.wavelengths(dtype, positions.device)
        # sin of the even channels and cos of the odd ones, interleaved: (sin₀, cos₀, sin₁, cos₁, …).
        return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)

    def extra_repr(self) -> str:
        return f"{self.embed_dim}, temperature={self.temperature:g}"


class LearnedPositionEmbedding(nn.Module):
    """One learned ``embed_dim`` vector per position 0 … ``num_positions`` − 1: ``forward(positions)`` (int64, any
    shape) → ``[..., embed_dim]``. ``num_positions · embed_dim`` parameters, initialised N(0, 1) as ``nn.Embedding``."""

    def __init__(self, num_positions: int, embed_dim: int) -> None:
        super().__init__()
        self.num_positions = _check_positive_int(num_positions, "num_positions")
        self.embed_dim = _check_positive_int(embed_dim, "embed_dim")
        self.embedding = nn.Embedding(num_positions, embed_dim)

    def forward(self, positions: Tensor) -> Tensor:
        if not isinstance(positions, Tensor) or positions.is_floating_point() or positions.dtype == torch.bool:
            got = positions.dtype if isinstance(positions, Tensor) else type(positions).__name__
            raise TypeError(f"positions must be an integer tensor, got {got}")
        if positions.numel() and (positions.min() < 0 or positions.max() >= self.num_positions):
            raise ValueError(
                f"positions must lie in 0..{self.num_positions - 1}, got {positions.min()}..{positions.max()}"
            )
        return self.embedding(positions)

    def extra_repr(self) -> str:
        return f"{self.num_positions}, {self.embed_dim}"


class SinePositionEmbedding2d(nn.Module):
    """DETR's two-dimensional sine encoding (module docstring): ``forward(pixel_mask)``, a mask ``[N, H, W]`` that
    is 1 (True) on the image and 0 on its padding, gives ``[N, 2·num_pos_feats, H, W]``: the row's encoding in
    the first ``num_pos_feats`` channels, the column's in the rest.

    No parameters. Args: ``num_pos_feats`` F (DETR: 128 = d_model / 2), ``temperature`` T, ``normalize`` (DETR:
    True) and ``scale`` s, the span of the normalised positions (2π by default; only with ``normalize``).
    """

    def __init__(
        self,
        num_pos_feats: int = 128,
        temperature: float = 10000.0,
        normalize: bool = True,
        scale: float | None = None,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if scale is not None and not normalize:
            raise ValueError("scale is the span of the normalised positions: give it only with normalize=True")
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        self.encoding = SinusoidalPositionalEncoding(num_pos_feats, temperature)
        self.num_pos_feats = num_pos_feats
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else float(scale)
        self.eps = eps

    def forward(self, pixel_mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        if not isinstance(pixel_mask, Tensor) or pixel_mask.ndim != 3:
            shape = list(pixel_mask.shape) if isinstance(pixel_mask, Tensor) else type(pixel_mask).__name__
            raise ValueError(f"pixel_mask must be a tensor [N, H, W] (1 on the image, 0 on padding), got {shape}")
        mask = pixel_mask.to(dtype)
        y, x = mask.cumsum(1), mask.cumsum(2)
        if self.normalize:
            y = y / (y[:, -1:, :] + self.eps) * self.scale
            x = x / (x[:, :, -1:] + self.eps) * self.scale
        return torch.cat((self.encoding(y), self.encoding(x)), dim=-1).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"{self.num_pos_feats}, temperature={self.encoding.temperature:g}, normalize={self.normalize}, " + (
            f"scale={self.scale:.4g}"
        )
