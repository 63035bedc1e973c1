"""Bilinear resizing, equal to ``F.interpolate(mode="bilinear")`` (no antialiasing).

Each output row/column ``o`` samples the input at a source coordinate ``u`` and blends the two neighbours,

    out = (1 - λ) · in[floor(u)] + λ · in[min(floor(u) + 1, size_in - 1)],    λ = u - floor(u)

done along H and then along W (bilinear interpolation is separable). The source coordinate follows PyTorch:

    align_corners=True :  u = o · (size_in - 1) / (size_out - 1)                 (u = 0 when size_out == 1)
    align_corners=False:  u = max(0, (o + 0.5) · r - 0.5),  r = 1 / scale_factor if one was given and not
                          recomputed, else size_in / size_out

(``align_corners=False`` treats pixels as unit squares whose centres sit at half-integers; ``True`` pins the
corner pixels' centres onto each other.) With ``scale_factor`` the output size is ``floor(size_in · scale)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from zoo.fundamentals._common import as_pair, check_tensor

__all__ = ["resize_bilinear"]


def _source_indices(
    size_in: int, size_out: int, scale: float | None, align_corners: bool, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """Lower and upper neighbour index and the upper neighbour's weight for every output position."""
    dst = torch.arange(size_out, dtype=dtype, device=device)
    if align_corners:
        ratio = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
        src = dst * ratio
    else:
        ratio = 1.0 / scale if scale is not None else size_in / size_out
        src = ((dst + 0.5) * ratio - 0.5).clamp(min=0)
    lower = src.floor().long().clamp(max=size_in - 1)
    upper = (lower + 1).clamp(max=size_in - 1)
    return lower, upper, src - lower


def _output_geometry(
    size_in: tuple[int, int],
    size: int | Sequence[int] | None,
    scale_factor: float | Sequence[float] | None,
    recompute_scale_factor: bool | None,
) -> tuple[tuple[int, int], tuple[float | None, float | None]]:
    """Output size and, when the scale factor is to be used as is, the per-axis scale."""
    if (size is None) == (scale_factor is None):
        raise ValueError("expected exactly one of size and scale_factor")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("recompute_scale_factor is only meaningful with scale_factor, not with size")
        return as_pair(size, "size", minimum=1), (None, None)
    scales = (scale_factor, scale_factor) if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
    if len(scales) != 2 or not all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in scales):
        raise ValueError(f"scale_factor: expected a positive number or a pair of them, got {scale_factor!r}")
    out = tuple(math.floor(n * s) for n, s in zip(size_in, scales, strict=True))
    if min(out) < 1:
        raise ValueError(f"scale_factor {scale_factor!r} shrinks the input {tuple(size_in)} to nothing: {out}")
    return out, ((None, None) if recompute_scale_factor else tuple(float(s) for s in scales))


def resize_bilinear(
    input: Tensor,
    size: int | Sequence[int] | None = None,
    scale_factor: float | Sequence[float] | None = None,
    align_corners: bool = False,
    recompute_scale_factor: bool | None = None,
) -> Tensor:
    """Resize ``[N, C, H, W]`` (or ``[C, H, W]``) to ``size = (H_out, W_out)``, or by ``scale_factor``, as
    ``F.interpolate(input, size, scale_factor, mode="bilinear", align_corners=...)`` does."""
    check_tensor(input, "input", (3, 4))
    if not isinstance(align_corners, bool):
        raise TypeError(f"align_corners: expected a bool, got {align_corners!r}")
    if min(input.shape[-2:]) < 1:
        raise ValueError(f"input: expected a non-empty image, got shape {list(input.shape)}")
    (out_h, out_w), (scale_h, scale_w) = _output_geometry(
        tuple(input.shape[-2:]), size, scale_factor, recompute_scale_factor
    )
    # Half precision loses too much in the coordinates; PyTorch computes them in float32 too.
    coord_dtype = input.dtype if input.dtype == torch.float64 else torch.float32
    top, bottom, wy = _source_indices(input.shape[-2], out_h, scale_h, align_corners, coord_dtype, input.device)
    left, right, wx = _source_indices(input.shape[-1], out_w, scale_w, align_corners, coord_dtype, input.device)
    wy, wx = wy.to(input.dtype)[:, None], wx.to(input.dtype)
    rows = input.index_select(-2, top) * (1 - wy) + input.index_select(-2, bottom) * wy
    return rows.index_select(-1, left) * (1 - wx) + rows.index_select(-1, right) * wx
