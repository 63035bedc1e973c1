"""Gaussian blur (drop-in for ``torchvision.transforms.functional.gaussian_blur``) and a median filter.

Gaussian blur convolves each channel with ``g_y ⊗ g_x``, done as two 1-D passes (the 2-D Gaussian is separable):

    g[t] = exp(-t² / (2σ²)) / Σ_t' exp(-t'² / (2σ²)),     t = -(k-1)/2, ..., (k-1)/2

with torchvision's conventions: ``kernel_size`` and ``sigma`` are given as ``(x, y)`` = (width, height), kernel
sizes are odd, ``sigma=None`` means ``σ = 0.3 · ((k - 1)/2 - 1) + 0.8``, the border is ``"reflect"``-padded by
``k // 2``, and integer images are blurred in float32 and rounded back.

The median filter replaces every pixel by the median of its ``k_h × k_w`` neighbourhood (odd sizes, so the median
is one of the values). Its border mode is ``padding_mode``:

    "reflect"    d c b | a b c d | c b a     (PyTorch's reflect;  scipy.ndimage's "mirror")
    "symmetric"  c b a | a b c d | d c b     (numpy's symmetric;  scipy.ndimage's "reflect", its default)
    "replicate"  a a a | a b c d | d d d     (scipy.ndimage's "nearest")
    "circular"   b c d | a b c d | a b c     (scipy.ndimage's "wrap")
    "zeros"      0 0 0 | a b c d | 0 0 0     (scipy.ndimage's "constant" with cval=0)

Padding is a gather with reflected indices, so a kernel wider than the image still works (the pattern repeats).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from zoo.fundamentals._common import as_pair, check_tensor
from zoo.fundamentals.conv import conv2d_im2col, sliding_windows

__all__ = ["PADDING_MODES", "pad2d", "gaussian_kernel1d", "gaussian_blur", "median_filter"]

PADDING_MODES = ("reflect", "symmetric", "replicate", "circular", "zeros")


def _padded_indices(size: int, pad: int, mode: str, device: torch.device) -> Tensor:
    """Source index of each position of a length-``size`` axis padded by ``pad`` on both sides (``size``: a zero)."""
    i = torch.arange(-pad, size + pad, device=device)
    if mode == "reflect":
        period = max(2 * (size - 1), 1)
        i = i.remainder(period)
        return torch.where(i < size, i, period - i)
    if mode == "symmetric":
        i = i.remainder(2 * size)
        return torch.where(i < size, i, 2 * size - 1 - i)
    if mode == "replicate":
        return i.clamp(0, size - 1)
    if mode == "circular":
        return i.remainder(size)
    return torch.where((i >= 0) & (i < size), i, size)


def pad2d(input: Tensor, padding: tuple[int, int], mode: str) -> Tensor:
    """Pad the last two axes by ``padding = (p_h, p_w)`` on both sides with one of :data:`PADDING_MODES`."""
    if mode not in PADDING_MODES:
        raise ValueError(f"padding_mode: expected one of {PADDING_MODES}, got {mode!r}")
    rows = _padded_indices(input.shape[-2], padding[0], mode, input.device)
    cols = _padded_indices(input.shape[-1], padding[1], mode, input.device)
    if mode == "zeros":
        # Gather from a copy with one zero row and column appended, at index ``size``.
        input = torch.nn.functional.pad(input, (0, 1, 0, 1))
    return input.index_select(-2, rows).index_select(-1, cols)


def gaussian_kernel1d(
    kernel_size: int, sigma: float, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> Tensor:
    """The normalised 1-D Gaussian ``g`` of the module docstring, ``kernel_size`` taps."""
    t = torch.arange(kernel_size, dtype=dtype, device=device) - (kernel_size - 1) / 2
    pdf = torch.exp(-0.5 * (t / sigma) ** 2)
    return pdf / pdf.sum()


def _check_image(img: Tensor) -> tuple[Tensor, bool]:
    check_tensor(img, "img", (3, 4), floating=False)
    return (img.unsqueeze(0), True) if img.dim() == 3 else (img, False)


def _blur_sizes(
    kernel_size: int | Sequence[int], sigma: float | Sequence[float] | None
) -> tuple[tuple[int, int], tuple[float, float]]:
    """``(k_x, k_y)`` and ``(σ_x, σ_y)``, torchvision's order and defaults."""
    kx, ky = as_pair(kernel_size, "kernel_size", minimum=1)
    if kx % 2 == 0 or ky % 2 == 0:
        raise ValueError(f"kernel_size: expected odd sizes, got {kernel_size!r}")
    if sigma is None:
        return (kx, ky), tuple(0.3 * ((k - 1) * 0.5 - 1) + 0.8 for k in (kx, ky))
    sigmas = (sigma, sigma) if isinstance(sigma, (int, float)) else tuple(sigma)
    if len(sigmas) == 1:
        sigmas = sigmas * 2
    if len(sigmas) != 2 or not all(isinstance(s, (int, float)) and s > 0 for s in sigmas):
        raise ValueError(f"sigma: expected a positive number or a pair of them, got {sigma!r}")
    return (kx, ky), tuple(float(s) for s in sigmas)


def gaussian_blur(
    img: Tensor, kernel_size: int | Sequence[int], sigma: float | Sequence[float] | None = None
) -> Tensor:
    """Blur a ``[C, H, W]`` or ``[N, C, H, W]`` image like ``torchvision.transforms.functional.gaussian_blur``;
    ``kernel_size`` and ``sigma`` are ``(x, y)``."""
    x, unbatched = _check_image(img)
    (kx, ky), (sigma_x, sigma_y) = _blur_sizes(kernel_size, sigma)
    if x.numel() == 0:
        return img.clone()
    height, width = x.shape[-2:]
    if ky // 2 >= height or kx // 2 >= width:
        raise ValueError(
            f"kernel_size {(kx, ky)}: reflect padding needs kernel_size // 2 smaller than the image ({width}x{height})"
        )
    dtype = x.dtype if x.is_floating_point() else torch.float32
    channels = x.shape[1]
    g_x = gaussian_kernel1d(kx, sigma_x, dtype, x.device).view(1, 1, 1, kx).expand(channels, 1, 1, kx)
    g_y = gaussian_kernel1d(ky, sigma_y, dtype, x.device).view(1, 1, ky, 1).expand(channels, 1, ky, 1)
    out = pad2d(x.to(dtype), (ky // 2, kx // 2), "reflect")
    out = conv2d_im2col(conv2d_im2col(out, g_y, groups=channels), g_x, groups=channels)
    if not img.is_floating_point():
        out = out.round().to(img.dtype)
    return out.squeeze(0) if unbatched else out


def median_filter(img: Tensor, kernel_size: int | Sequence[int], padding_mode: str = "reflect") -> Tensor:
    """Median of every ``kernel_size = (k_h, k_w)`` neighbourhood (odd sizes) of a ``[C, H, W]`` or
    ``[N, C, H, W]`` image, channels independent; the border follows ``padding_mode`` (see the module docstring;
    ``scipy.ndimage.median_filter``'s default border is our ``"symmetric"``)."""
    x, unbatched = _check_image(img)
    kh, kw = as_pair(kernel_size, "kernel_size", minimum=1)
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel_size: expected odd sizes, got {kernel_size!r}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode: expected one of {PADDING_MODES}, got {padding_mode!r}")
    if x.numel() == 0:
        return img.clone()
    windows = sliding_windows(pad2d(x, (kh // 2, kw // 2), padding_mode), (kh, kw), (1, 1), (1, 1))
    n, c, _, _, h, w = windows.shape
    out = windows.reshape(n, c, kh * kw, h, w).median(dim=2).values
    return out.squeeze(0) if unbatched else out
