"""The blocks of the Vision Transformer (Dosovitskiy et al., 2020, arXiv:2010.11929): patch embedding, the
class token and position embedding, the pre-norm encoder block, and resampling of the position embedding.

An H×W image becomes a sequence of L = (H/P)·(W/P) tokens: each non-overlapping P×P patch, flattened to P²·C
values, is projected linearly to D — the same as a P×P convolution with stride P (:class:`ViTPatchEmbed`). A learned
class token is put in front and a learned position embedding added (:class:`ViTEmbedding`, the paper's eq. 1):

    z₀ = [x_class; x¹E; …; x^L E] + E_pos,        E_pos ∈ R^{(1+L)×D}

The encoder block (:class:`ViTBlock`, eqs. 2-3) is pre-norm: each half normalises its input, and the residual
adds the untouched stream back:

    z' = z + MSA(LN(z)),        z'' = z' + MLP(LN(z')),        MLP(x) = W₂·GELU(W₁·x + b₁) + b₂ (D → D_mlp → D)

The position embedding is learned for one grid; :func:`resample_pos_embed` interpolates it (bicubic, as timm's
``resample_abs_pos_embed``) to another, so that a model runs and fine-tunes at other image sizes (the paper's §3.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers.attention import MultiheadAttention

__all__ = ["ViTPatchEmbed", "ViTBlock", "ViTEmbedding", "resample_pos_embed"]


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _grid(value: object, name: str) -> tuple[int, int]:
    grid = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not (
        isinstance(grid, (tuple, list))
        and len(grid) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in grid)
    ):
        raise ValueError(f"{name} must be a positive int or an (H, W) pair of them, got {value!r}")
    return int(grid[0]), int(grid[1])


def resample_pos_embed(
    pos_embed: torch.Tensor,
    new_grid: int | Sequence[int],
    old_grid: int | Sequence[int] | None = None,
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """A (1, prefix + h·w, D) position embedding of an h×w grid (``old_grid``, square if not given) resampled to
    ``new_grid``: the grid part is interpolated bicubically as an image (antialiased when shrinking, computed in
    float32, as timm's ``resample_abs_pos_embed``); the ``num_prefix_tokens`` (the class token's) are kept as
    they are. The same grid returns ``pos_embed`` itself."""
    if not isinstance(pos_embed, torch.Tensor) or pos_embed.ndim != 3:
        shape = tuple(pos_embed.shape) if isinstance(pos_embed, torch.Tensor) else type(pos_embed).__name__
        raise ValueError(f"pos_embed must be a (1, prefix + h·w, D) tensor, got {shape}")
    if isinstance(num_prefix_tokens, bool) or not isinstance(num_prefix_tokens, int) or num_prefix_tokens < 0:
        raise ValueError(f"num_prefix_tokens must be an int >= 0, got {num_prefix_tokens!r}")
    grid_tokens = pos_embed.shape[1] - num_prefix_tokens
    if old_grid is None:
        side = math.isqrt(max(grid_tokens, 0))
        if side * side != grid_tokens:
            raise ValueError(
                f"pos_embed holds {grid_tokens} grid positions (after {num_prefix_tokens} prefix tokens), not a "
                "square number: give old_grid=(h, w)"
            )
        old_grid = side
    old_h, old_w = _grid(old_grid, "old_grid")
    new_h, new_w = _grid(new_grid, "new_grid")
    if old_h * old_w != grid_tokens:
        raise ValueError(
            f"old_grid {old_h}×{old_w} has {old_h * old_w} positions, pos_embed {grid_tokens} "
            f"(after {num_prefix_tokens} prefix tokens)"
        )
    if (old_h, old_w) == (new_h, new_w):
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    # (1, h·w, D) → (1, D, h, w): interpolate as a D-channel image, then back to a sequence.
    image = grid.float().reshape(1, old_h, old_w, -1).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
    grid = image.permute(0, 2, 3, 1).reshape(1, new_h * new_w, -1).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


class ViTPatchEmbed(nn.Module):
    """Cut an (N, C, H, W) image into P×P patches and project each to D: a P×P convolution with stride P,
    flattened to (N, L, D) tokens in row-major order, L = (H/P)·(W/P). (Swin's
    :class:`~zoo.layers.swin.PatchEmbed` adds a LayerNorm and keeps the (N, D, H/P, W/P) map.)

    Parameters: P²·C·D + D; multiply-adds: L·P²·C·D. H and W must be multiples of P (a ValueError otherwise:
    the border would be dropped silently).
    """

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.embed_dim = _positive_int(embed_dim, "embed_dim")
        self.patch_size = _positive_int(patch_size, "patch_size")
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H/P, W/P) patch grid of an H×W image; a ValueError unless P divides both."""
        height, width = int(height), int(width)  # sizes are tensors while jit-tracing (fvcore): one grid a trace
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"the image size must be divisible by the patch size {self.patch_size}, got "
                f"{height}×{width} (resize or crop to a multiple of {self.patch_size}, e.g. "
                f"{height // self.patch_size * self.patch_size or self.patch_size}×"
                f"{width // self.patch_size * self.patch_size or self.patch_size})"
            )
        return height // self.patch_size, width // self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"ViTPatchEmbed expects an (N, C, H, W) image batch, got {shape}")
        self.grid_size(x.shape[-2], x.shape[-1])
        return self.proj(x).flatten(2).transpose(1, 2)  # (N, D, h, w) → (N, h·w, D)


class ViTEmbedding(nn.Module):
    """z₀ = [class token; patch embeddings] + position embedding, then dropout: (N, C, H, W) → (N, 1 + L, D).

    ``grid_size`` is the patch grid the position embedding is learned for (image size / patch size). An image of
    another size (still a multiple of P) gets the embedding resampled to its grid on the fly
    (:func:`resample_pos_embed`): the same as a model built at that size from resampled weights.
    Parameters: P²·C·D + D (patches) + D (class token) + (1 + L)·D (positions).
    """

    num_prefix_tokens = 1

    def __init__(
        self, in_channels: int, embed_dim: int, patch_size: int, grid_size: int | Sequence[int], dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.patch_embed = ViTPatchEmbed(in_channels, embed_dim, patch_size)
        self.grid = _grid(grid_size, "grid_size")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix_tokens + self.grid[0] * self.grid[1], embed_dim))
        self.dropout = nn.Dropout(dropout)

    def position_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position embedding for a ``grid`` of patches: the learned one, or resampled from it."""
        return resample_pos_embed(self.pos_embed, grid, self.grid, self.num_prefix_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x)
        grid = self.patch_embed.grid_size(x.shape[-2], x.shape[-1])
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return self.dropout(tokens + self.position_embedding(grid))


class ViTBlock(nn.Module):
    """The pre-norm encoder block: x + MSA(LN₁(x)), then x + MLP(LN₂(x)), on (N, L, D) tokens.

    The names are torchvision's ``EncoderBlock``'s (``ln_1``, ``self_attention`` — a
    :class:`~zoo.layers.MultiheadAttention` with torch.nn's parameter names — ``ln_2``, ``mlp`` =
    Linear-GELU-Dropout-Linear-Dropout), so torchvision's state_dict loads as it is and timm's by renames.
    The same computation as :class:`~zoo.layers.TransformerEncoderLayer` with ``norm_first=True`` and GELU; this
    block keeps ViT's names and gives the attention weights (``forward(x, return_attention=True)`` returns
    ``(x, weights)``, weights (N, heads, L, L) per head, for attention rollout), which the fused kernel cannot.
    ``fused_attn=False`` runs the hand-written attention instead of ``F.scaled_dot_product_attention``.

    Parameters (D = embed_dim, F = mlp_dim): 4·D² + 4·D (attention) + 2·D·F + F + D (MLP) + 4·D (two LNs)
    = 12·D² + 13·D for F = 4·D. Multiply-adds for L tokens: 4·L·D² (Q, K, V and output projections)
    + 2·L²·D (scores and weighted sum) + 2·L·D·F (MLP), plus the LayerNorms'.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        mlp_dim: int,
        *,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        norm_eps: float = 1e-6,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        _positive_int(mlp_dim, "mlp_dim")
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.ln_1 = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.self_attention = MultiheadAttention(
            embed_dim, num_heads, dropout=attention_dropout, batch_first=True, fused_attn=fused_attn
        )
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, embed_dim),
            nn.Dropout(dropout),
        )

    @property
    def fused_attn(self) -> bool:
        return self.self_attention.fused_attn

    @fused_attn.setter
    def fused_attn(self, value: bool) -> None:
        self.self_attention.fused_attn = value

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"ViTBlock expects (N, L, D) tokens, got {shape}")
        y = self.ln_1(x)
        y, weights = self.self_attention(
            y, y, y, need_weights=return_attention, average_attn_weights=False
        )  # need_weights=False: the fused kernel
        x = x + self.dropout(y)
        x = x + self.mlp(self.ln_2(x))
        return (x, weights) if return_attention else x
