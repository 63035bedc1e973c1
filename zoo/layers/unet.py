"""U-Net's blocks (Ronneberger, Fischer & Brox, 2015, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", arXiv:1505.04597), in the padded form most implementations use (e.g. milesial/Pytorch-UNet):
3×3 convolutions with padding 1 keep the size, so skips need no cropping and the output matches the input.

    DoubleConv(C_in, C_out, C_mid)  3×3 conv-BN-ReLU C_in → C_mid, then 3×3 conv-BN-ReLU C_mid → C_out (no biases)
    Down(C_in, C_out)               2×2 max-pool (stride 2) → DoubleConv(C_in, C_out)
    Up(C_in, C_skip, C_out)         ×2 upsampling of the deeper map, padded to the skip's size, [skip, up]
                                    concatenated on channels, DoubleConv(C_cat, C_out, C_mid)
    OutConv(C_in, K)                1×1 conv with bias to K class logits
    UnetDecoderBlock(C_in, C_skip, C_out)
                                    segmentation_models_pytorch's decoder stage: nearest-neighbour resize of the
                                    deeper map to a given size, [up, skips] concatenated (up first), DoubleConv

Up's upsampling is either a 2×2 stride-2 transposed conv halving the channels (C_cat = ⌊C_in/2⌋ + C_skip,
C_mid = C_out), or, with ``bilinear=True``, parameter-free bilinear ×2 with ``align_corners=True`` as the
reference implementation (C_cat = C_in + C_skip, C_mid = ⌊C_cat/2⌋).

Parameters (BN adds 2 per channel: γ, β) and multiply-adds on an H×W output:
    DoubleConv  params = 9·C_in·C_mid + 2·C_mid + 9·C_mid·C_out + 2·C_out
                MACs   = H·W·9·(C_in·C_mid + C_mid·C_out)
    Down        as DoubleConv at the pooled size (pooling has neither)
    Up          DoubleConv(C_cat, C_out, C_mid), plus the transposed conv's 4·C_in·⌊C_in/2⌋ + ⌊C_in/2⌋ params
                and (H/2)·(W/2)·4·C_in·⌊C_in/2⌋ MACs
    OutConv     params = C_in·K + K,   MACs = H·W·C_in·K
    UnetDecoderBlock  DoubleConv(C_in + C_skip, C_out): params = 9·(C_in + C_skip)·C_out + 9·C_out² + 4·C_out
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct

__all__ = ["DoubleConv", "Down", "OutConv", "UnetDecoderBlock", "Up", "pad_to_size"]


def _check_channels(**channels: int) -> None:
    for name, value in channels.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def pad_to_size(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Zero-pad (or, for a larger ``x``, crop) the last two dims of ``x`` to ``size``, the difference split as the
    reference U-Net does: ⌊d/2⌋ before, the rest after."""
    dy, dx = size[0] - x.shape[-2], size[1] - x.shape[-1]
    if dy == 0 and dx == 0:
        return x
    # F.pad crops on negative amounts, which covers encoders whose strided convs round the size up.
    return F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])


class DoubleConv(nn.Module):
    """``conv1`` (3×3 conv-BN-ReLU, C_in → C_mid) → ``conv2`` (3×3 conv-BN-ReLU, C_mid → C_out); C_mid defaults
    to C_out."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None) -> None:
        super().__init__()
        mid_channels = out_channels if mid_channels is None else mid_channels
        _check_channels(in_channels=in_channels, out_channels=out_channels, mid_channels=mid_channels)
        self.conv1 = ConvNormAct(in_channels, mid_channels, 3)
        self.conv2 = ConvNormAct(mid_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class Down(nn.Module):
    """``pool`` (2×2 max-pool, stride 2: H×W → ⌊H/2⌋×⌊W/2⌋) → ``conv`` (DoubleConv)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))


class Up(nn.Module):
    """``up`` (transposed 2×2/2 conv to ⌊C_in/2⌋ channels, or bilinear ×2) → pad to the skip's size →
    concatenate ``[skip, up]`` → ``conv`` (DoubleConv).

    ``skip_channels=0`` makes a stage without a skip (``forward(x)`` alone). ``mid_channels`` overrides the
    DoubleConv's middle width (default: C_out, or ⌊C_cat/2⌋ with ``bilinear=True``, as the reference U-Net).
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        bilinear: bool = False,
        mid_channels: int | None = None,
    ) -> None:
        super().__init__()
        _check_channels(in_channels=in_channels, out_channels=out_channels)
        if isinstance(skip_channels, bool) or not isinstance(skip_channels, int) or skip_channels < 0:
            raise ValueError(f"skip_channels must be an int >= 0 (0: no skip), got {skip_channels!r}")
        if not isinstance(bilinear, bool):
            raise TypeError(f"bilinear must be a bool, got {type(bilinear).__name__}")
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            cat_channels = in_channels + skip_channels
            mid_channels = cat_channels // 2 if mid_channels is None else mid_channels
        else:
            if in_channels < 2:
                raise ValueError(f"the transposed conv halves in_channels, which must be >= 2, got {in_channels}")
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            cat_channels = in_channels // 2 + skip_channels
        self.skip_channels = skip_channels
        self.conv = DoubleConv(cat_channels, out_channels, mid_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if (skip is None) != (self.skip_channels == 0):
            expected = "no skip" if self.skip_channels == 0 else f"a skip of {self.skip_channels} channels"
            raise ValueError(f"this Up block was built for {expected}, got {'none' if skip is None else 'one'}")
        x = self.up(x)
        if skip is not None:
            x = torch.cat([skip, pad_to_size(x, skip.shape[-2:])], dim=1)
        return self.conv(x)


class OutConv(nn.Conv2d):
    """The 1×1 convolution (with bias) from the last decoder map to the class logits."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        _check_channels(in_channels=in_channels, num_classes=num_classes)
        super().__init__(in_channels, num_classes, kernel_size=1)


class UnetDecoderBlock(nn.Module):
    """One decoder stage of segmentation_models_pytorch's U-Net and U-Net++: ``forward(x, size, skips)`` resizes
    ``x`` to ``size`` by nearest-neighbour interpolation, concatenates ``[x, *skips]`` on channels (the upsampled
    map first, unlike :class:`Up`) and applies ``conv`` (DoubleConv, C_in + C_skip → C_out).

    ``skip_channels`` is the channel total of the skips (0: a stage without one). Resizing to a size rather than
    by ×2 lets the U-Net follow an encoder's rounded-up odd sizes; at an even size the two are the same.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        _check_channels(in_channels=in_channels, out_channels=out_channels)
        if isinstance(skip_channels, bool) or not isinstance(skip_channels, int) or skip_channels < 0:
            raise ValueError(f"skip_channels must be an int >= 0 (0: no skip), got {skip_channels!r}")
        self.skip_channels = skip_channels
        self.conv = DoubleConv(in_channels + skip_channels, out_channels)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int] | torch.Size, skips: Sequence[torch.Tensor] = ()
    ) -> torch.Tensor:
        x = F.interpolate(x, size=tuple(size), mode="nearest")
        if skips:
            x = torch.cat([x, *skips], dim=1)
        return self.conv(x)
