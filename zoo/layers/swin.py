"""The blocks of the Swin Transformer (Liu et al., 2021, arXiv:2103.14030), with torchvision's names and order.

Inside a stage the blocks work on channels-last maps (N, H, W, C), as torchvision's do: every layer but the
attention is a LayerNorm or a Linear over the last dimension. :class:`SwinStage` and :class:`PatchEmbed` take and
return (N, C, H, W) maps, stored channels-last, so that a stage is a backbone stage like any other (FPN and U-Net
read it as they read a ResNet's) while the permutes at its ends are views that copy nothing.

Window attention (W-MSA): the map is cut into non-overlapping M×M windows and each token attends only to the M²
tokens of its window:
    Attention(Q, K, V) = softmax(Q·Kᵀ/√d + B + S)·V     per window and head,
B the relative position bias, B[i, j] = T[Δy(i, j) + M − 1, Δx(i, j) + M − 1] read from a learned table T of
(2M − 1)² entries per head, and S the shift mask below (0 in unshifted blocks).

Shifted windows (SW-MSA): every second block rolls the map by ⌊M/2⌋ tokens up and left before partitioning, so
that its windows straddle the previous block's window borders and information crosses them. A window at the
bottom or right border then holds tokens that were not neighbours before the roll (the rows and columns that
wrapped around); S is −100 between tokens of different regions (the rows [0, H − M), [H − M, H − s), [H − s, H)
times the same three column ranges, s the shift) and 0 within one, −100 rather than −∞ as in the official code.

Maps whose sides are not multiples of M are padded with zeros on the bottom and right before the windows are
cut (the padded tokens are attended to, as torchvision does); where the padded side is no more than M there is
a single window along it and no shift.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers.attention import attention
from zoo.layers.helpers import drop_path

__all__ = [
    "PatchEmbed",
    "PatchMerging",
    "ShiftedWindowAttention",
    "SwinBlock",
    "SwinStage",
    "relative_position_index",
    "shifted_window_mask",
    "window_partition",
    "window_reverse",
]

# The shift mask's value between tokens that were not neighbours before the roll (the official code's).
SHIFT_MASK_VALUE = -100.0


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_channels_last(x: object, dim: int, who: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor of shape (N, H, W, {dim}), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[-1] != dim:
        raise ValueError(f"{who} expects a channels-last map of shape (N, H, W, {dim}), got {tuple(x.shape)}")


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(N, H, W, C) with H and W multiples of M → (N·H/M·W/M, M², C), the windows in row-major order."""
    n, height, width, channels = x.shape
    if height % window_size or width % window_size:
        raise ValueError(f"window_partition needs H and W divisible by {window_size}, got {height}×{width}")
    x = x.view(n, height // window_size, window_size, width // window_size, window_size, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, channels)


def window_reverse(windows: torch.Tensor, window_size: int, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`window_partition`: (N·H/M·W/M, M², C) → (N, H, W, C)."""
    channels = windows.shape[-1]
    x = windows.view(-1, height // window_size, width // window_size, window_size, window_size, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def relative_position_index(window_size: int) -> torch.Tensor:
    """For every pair (i, j) of the M² tokens of a window, the row of the bias table holding their offset:
    (Δy + M − 1)·(2M − 1) + (Δx + M − 1), flattened to M⁴ entries (torchvision's buffer)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
    coords = coords.flatten(1)  # (2, M²): the row and column of each token
    offsets = coords[:, :, None] - coords[:, None, :] + window_size - 1  # (2, M², M²), each in [0, 2M − 2]
    return (offsets[0] * (2 * window_size - 1) + offsets[1]).flatten()


def _region_labels(size: int, window_size: int, shift: int) -> torch.Tensor:
    """Along one side of the rolled map: 0, 1, 2 for the ranges [0, size − M), [size − M, size − s), [size − s,
    size) (all 0 without a shift)."""
    index = torch.arange(size)
    if shift == 0:
        return torch.zeros(size, dtype=torch.long)
    return (index >= size - window_size).long() + (index >= size - shift).long()


def shifted_window_mask(
    height: int, width: int, window_size: int, shift: tuple[int, int], device: torch.device | None = None
) -> torch.Tensor:
    """The shift mask S of the (padded) H×W map: (number of windows, M², M²), 0 between tokens of one region
    and −100 between tokens of different regions (see the module docstring)."""
    regions = _region_labels(height, window_size, shift[0])[:, None] * 3 + _region_labels(width, window_size, shift[1])
    regions = window_partition(regions.view(1, height, width, 1), window_size).squeeze(-1)  # (windows, M²)
    different = regions[:, :, None] != regions[:, None, :]
    return torch.zeros(different.shape, device=device).masked_fill_(different.to(device), SHIFT_MASK_VALUE)


_cached_shifted_window_mask = functools.lru_cache(maxsize=64)(shifted_window_mask)


def _shift_mask_for(height: int, width: int, window_size: int, shift: tuple[int, int], device) -> torch.Tensor:
    """S for the attention layers: in eager mode built once per map size and device and shared by every block
    that sees that size (read-only); under torch.compile and torch.export built in the graph, where a cached
    tensor would be a fake one that leaks into later eager calls."""
    if torch.compiler.is_compiling():
        return shifted_window_mask(height, width, window_size, shift, device)
    return _cached_shifted_window_mask(height, width, window_size, shift, device)


class ShiftedWindowAttention(nn.Module):
    """Multi-head self-attention within M×M windows, shifted by ``shift_size`` (0: W-MSA), with a relative
    position bias; (N, H, W, C) in and out.

    With C channels, h heads and P tokens after padding to multiples of M:
        params = 4·C² + 4·C + (2M − 1)²·h          (qkv 3C² + 3C, proj C² + C, bias table)
        MACs   = 4·P·C² + 2·P·M²·C                 (projections, then scores and weighted sum in every window)
    against 4·P·C² + 2·P²·C for global attention: linear in P, the M² keys per query fixed.

    The attention runs through :func:`zoo.layers.attention.attention` with B + S as its float mask: PyTorch's
    fused kernel, or the hand-written one with ``fused_attn=False``. S is built once per map size and device.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 7,
        shift_size: int = 0,
        *,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        _positive_int(dim, "dim")
        _positive_int(num_heads, "num_heads")
        _positive_int(window_size, "window_size")
        if dim % num_heads:
            raise ValueError(f"dim must be divisible by num_heads, got dim={dim} and num_heads={num_heads}")
        if isinstance(shift_size, bool) or not isinstance(shift_size, int) or not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size must be an int in [0, window_size={window_size}), got {shift_size!r}")
        for name, rate in (("attn_drop_rate", attn_drop_rate), ("proj_drop_rate", proj_drop_rate)):
            if not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be a number in [0, 1), got {rate!r}")
        self.dim, self.num_heads, self.window_size, self.shift_size = dim, num_heads, window_size, shift_size
        self.attn_drop_rate, self.proj_drop_rate, self.fused_attn = attn_drop_rate, proj_drop_rate, fused_attn
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        # Persistent, as torchvision's, so that the two state_dicts have the same keys.
        self.register_buffer("relative_position_index", relative_position_index(window_size))

    def relative_position_bias(self) -> torch.Tensor:
        """B: (h, M², M²), read from the table."""
        tokens = self.window_size * self.window_size
        bias = self.relative_position_bias_table[self.relative_position_index]
        return bias.view(tokens, tokens, self.num_heads).permute(2, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels_last(x, self.dim, type(self).__name__)
        n, height, width, channels = x.shape
        window = self.window_size
        if height % window or width % window:
            x = F.pad(x, (0, 0, 0, -width % window, 0, -height % window))
        padded_height, padded_width = x.shape[1:3]
        # Along a side with a single window there is nothing to shift across.
        shift = tuple(self.shift_size if window < side else 0 for side in (padded_height, padded_width))
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        windows = window_partition(x, window)  # (N·W, M², C), W windows per image

        head_dim = channels // self.num_heads
        qkv = self.qkv(windows).view(-1, window * window, 3, self.num_heads, head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (N·W, h, M², d)
        mask = self.relative_position_bias().unsqueeze(0)  # (1, h, M², M²), the same in every window
        if any(shift):  # plus S: (W, 1, M², M²) → (N·W, h, M², M²), one per window, repeated over the batch
            mask = _shift_mask_for(padded_height, padded_width, window, shift, x.device).unsqueeze(1) + mask
            mask = mask.expand(n, -1, -1, -1, -1).reshape(-1, *mask.shape[1:])
        dropout_p = self.attn_drop_rate if self.training else 0.0
        # 4-D (batch, heads, L, d) inputs: the layout PyTorch's fused CPU and GPU kernels take.
        out = attention(q, k, v, mask.to(q.dtype), dropout_p, fused=self.fused_attn)
        out = out.transpose(1, 2).reshape(-1, window * window, channels)
        out = F.dropout(self.proj(out), self.proj_drop_rate, self.training)

        x = window_reverse(out, window, padded_height, padded_width)
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :height, :width].contiguous()

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_heads={self.num_heads}, window_size={self.window_size}, "
            f"shift_size={self.shift_size}, fused_attn={self.fused_attn}"
        )


class SwinBlock(nn.Module):
    """A pre-norm Swin Transformer block on (N, H, W, C) maps (torchvision's ``SwinTransformerBlock``):

        x = x + DropPath(SW-MSA(LN₁(x)))          x = x + DropPath(MLP(LN₂(x)))

    with MLP = Linear(C → r·C) → GELU → Dropout → Linear(r·C → C) → Dropout (``mlp.0`` and ``mlp.3``, as
    torchvision names them). With r = ``mlp_ratio`` and P tokens (P′ after padding to windows):
        params = (4 + 2r)·C² + (9 + r)·C + (2M − 1)²·h            (12·C² + 13·C + (2M − 1)²·h at r = 4)
        MACs   = 4·P′·C² + 2·P′·M²·C + 2r·P·C²   (plus the two LayerNorms, 5 per element as zoo.analysis counts)
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 7,
        shift_size: int = 0,
        *,
        mlp_ratio: float = 4.0,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        fused_attn: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(mlp_ratio, (int, float)) or mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be a positive number, got {mlp_ratio!r}")
        if not isinstance(drop_path_rate, (int, float)) or not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be a number in [0, 1), got {drop_path_rate!r}")
        self.drop_path_rate = drop_path_rate
        self.norm1 = norm_layer(dim)
        self.attn = ShiftedWindowAttention(
            dim,
            num_heads,
            window_size,
            shift_size,
            attn_drop_rate=attn_drop_rate,
            proj_drop_rate=proj_drop_rate,
            fused_attn=fused_attn,
        )
        self.norm2 = norm_layer(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(proj_drop_rate),
            nn.Linear(hidden, dim),
            nn.Dropout(proj_drop_rate),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path_rate, self.training)


class PatchMerging(nn.Module):
    """Halve the resolution and double the width: concatenate each 2×2 group of tokens (odd sides padded with
    zeros) to 4C channels, LayerNorm, then Linear(4C → 2C, no bias); (N, H, W, C) → (N, ⌈H/2⌉, ⌈W/2⌉, 2C).

        params = 8·C² + 8·C            MACs = (P/4)·8·C² = 2·P·C²  (P input tokens; plus the LayerNorm)
    """

    def __init__(self, dim: int, norm_layer: Callable[[int], nn.Module] = nn.LayerNorm) -> None:
        super().__init__()
        self.dim = _positive_int(dim, "dim")
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = norm_layer(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_channels_last(x, self.dim, type(self).__name__)
        height, width = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        # torchvision's order of the four: (even row, even col), (odd, even), (even, odd), (odd, odd).
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class PatchEmbed(nn.Module):
    """Patch partition and linear embedding: a p×p convolution with stride p, then a LayerNorm over the channels;
    (N, C_in, H, W) → (N, D, ⌊H/p⌋, ⌊W/p⌋), stored channels-last.

        params = p²·C_in·D + D + 2·D          MACs = (H/p)·(W/p)·p²·C_in·D  (plus the LayerNorm)
    """

    def __init__(
        self,
        in_chans: int = 3,
        embed_dim: int = 96,
        patch_size: int = 4,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        _positive_int(in_chans, "in_chans")
        _positive_int(embed_dim, "embed_dim")
        self.patch_size = _positive_int(patch_size, "patch_size")
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.norm = norm_layer(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SwinStage(nn.Module):
    """One stage: (patch merging, from the second stage on) then ``depth`` Swin blocks alternating W-MSA and
    SW-MSA (shift ⌊M/2⌋ in the odd blocks); (N, C_in, H, W) in, (N, C, H′, W′) out, channels-last inside.

    ``drop_path_rates`` gives each block's stochastic-depth rate (its length is the depth).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        drop_path_rates: list[float],
        *,
        window_size: int = 7,
        downsample: bool = False,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        **block_kwargs,
    ) -> None:
        super().__init__()
        _positive_int(dim, "dim")
        if downsample and dim % 2:
            raise ValueError(f"a stage with patch merging doubles its input width: dim must be even, got {dim}")
        self.downsample = PatchMerging(dim // 2, norm_layer) if downsample else nn.Identity()
        self.blocks = nn.Sequential(
            *(
                SwinBlock(
                    dim,
                    num_heads,
                    window_size,
                    0 if index % 2 == 0 else window_size // 2,
                    drop_path_rate=rate,
                    norm_layer=norm_layer,
                    **block_kwargs,
                )
                for index, rate in enumerate(drop_path_rates)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
