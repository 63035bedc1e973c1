"""U-Net (Ronneberger, Fischer & Brox, 2015, arXiv:1505.04597) in the padded form of milesial/Pytorch-UNet, the
U-Net of segmentation_models_pytorch (smp) over a ResNet, and a U-Net decoder over any registered classifier's
feature stages. Blocks are in :mod:`zoo.layers.unet`.

UNet, widths w_i = base_width · 2^i (64, 128, 256, 512, 1024), f = 2 with bilinear upsampling, else 1:

    inc    DoubleConv(in_chans, w0)                                   stride 1
    down1  Down(w0, w1) · down2 Down(w1, w2) · down3 Down(w2, w3)       strides 2, 4, 8
    down4  Down(w3, w4/f)                                             stride 16 (the bottleneck)
    up1    Up(w4/f, skip w3, w3/f) · up2 … w2/f · up3 … w1/f            strides 8, 4, 2
    up4    Up(w1/f, skip w0, w0)                                      stride 1
    outc   OutConv(w0, classes)

Halving the bottleneck with bilinear upsampling keeps the concatenations as wide as with transposed convs, which
halve the channels themselves. Four 2×2 poolings floor the size, so an input needs at least 16×16 pixels; each Up
pads its upsampled map back to the skip's size, so any H×W ≥ 16×16 comes back at H×W.

Parameters (from the block formulas in zoo.layers.unet): 31,037,698 for in_chans 3 and 2 classes with
transposed convs, 17,263,042 with bilinear upsampling.

BackboneUNet: the encoder is ``create_model(backbone, features_only=True)``; with R the deepest reduction, log2 R
decoder stages each upsample ×2 (Up, bilinear by default) and concatenate the deepest encoder map at the reduction
they reach, if there is one (ResNet has none at 2 and 1), then a 1×1 conv gives the logits, resized bilinearly
(align_corners=False) to the input when the encoder rounded odd sizes up. ``unet_mobilenet_v2`` is built so.

smp's U-Net (``unet_resnet34`` = ``smp.Unet("resnet34", classes=21)``; the encoder, the head and the size rules
are in :mod:`zoo.models.segmentation.encoder_decoder`): over the encoder maps [x, f1 … f5] (ResNet-34: 3, 64, 64,
128, 256, 512 channels at strides 1 … 32), five UnetDecoderBlocks with D = decoder_channels (256, 128, 64, 32, 16):

    stage s = 0 … 4:   resize (nearest) to the size of f_{4−s} (the input's at s = 4)
                       → concat f_{4−s} (no skip at s = 4) → DoubleConv → D_s channels
    head               3×3 conv (bias) D_4 → K

    decoder params = Σ_s [9·(C_in,s + C_skip,s)·D_s + 9·D_s² + 4·D_s],  C_in = (C_f5, D_0 … D_3),
                     C_skip = (C_f4, C_f3, C_f2, C_f1, 0)
    ResNet-34, K = 21: encoder 21,284,672 (torchvision's 21,797,672 less the 512·1000 + 1000 classifier)
                       + decoder 3,151,552 + head 9·16·21 + 21 = 3,045  →  24,439,269

Each stage resizes to the map it joins, so any H×W comes back at H×W (the stride-2 convolutions round odd sizes
up, the resizing follows them), as in smp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from zoo.layers.unet import DoubleConv, Down, OutConv, UnetDecoderBlock, Up
from zoo.models.base import FeatureInfo, check_image_batch
from zoo.models.features import FeatureListNet
from zoo.models.segmentation.encoder_decoder import (
    SMP_RESNET34,
    EncoderDecoder,
    ResNetEncoder,
    SegmentationHead,
    check_decoder_channels,
    check_positive_int,
)
from zoo.registry import create_model, register_model

__all__ = ["BackboneUNet", "UNet", "UnetDecoder"]

UNET_PAPER = "Ronneberger et al. 2015, U-Net, arXiv:1505.04597"

DECODER_CHANNELS = (256, 128, 64, 32, 16)


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


class UNet(nn.Module):
    """The four-level U-Net; ``forward(images)`` returns ``{"out": logits (N, classes, H, W)}``."""

    min_input_size = (16, 16)  # four 2×2 poolings

    def __init__(self, num_classes: int = 2, in_chans: int = 3, base_width: int = 64, bilinear: bool = False) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_chans", in_chans), ("base_width", base_width)):
            check_positive_int(name, value)
        _check_bool("bilinear", bilinear)
        self.num_classes, self.in_chans, self.bilinear = num_classes, in_chans, bilinear
        w0, w1, w2, w3, w4 = (base_width * 2**level for level in range(5))
        f = 2 if bilinear else 1
        self.inc = DoubleConv(in_chans, w0)
        self.down1 = Down(w0, w1)
        self.down2 = Down(w1, w2)
        self.down3 = Down(w2, w3)
        self.down4 = Down(w3, w4 // f)
        self.up1 = Up(w4 // f, w3, w3 // f, bilinear)
        self.up2 = Up(w3 // f, w2, w2 // f, bilinear)
        self.up3 = Up(w2 // f, w1, w1 // f, bilinear)
        self.up4 = Up(w1 // f, w0, w0, bilinear)
        self.outc = OutConv(w0, num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_image_batch(x, self.in_chans, type(self).__name__, next(self.parameters()).dtype)
        if x.shape[-2] < self.min_input_size[0] or x.shape[-1] < self.min_input_size[1]:
            raise ValueError(
                f"UNet pools four times by 2, so it needs at least 16×16 pixels, got {x.shape[-2]}×{x.shape[-1]}"
            )
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x = self.down4(x4)
        x = self.up4(self.up3(self.up2(self.up1(x, x4), x3), x2), x1)
        return {"out": self.outc(x)}


def _skip_plan(reductions: Sequence[int], num_stages: int) -> list[int | None]:
    """For decoder stage s (reaching reduction R/2^(s+1)), the index of the deepest encoder map at that reduction
    other than the bottleneck (the last map), or None."""
    deepest = reductions[-1]
    plan = []
    for stage in range(num_stages):
        target = deepest >> (stage + 1)
        matches = [index for index, reduction in enumerate(reductions[:-1]) if reduction == target]
        plan.append(matches[-1] if matches else None)
    return plan


def _check_reductions(reductions: Sequence[int]) -> int:
    """The number of ×2 decoder stages the encoder's deepest reduction needs (log2 R)."""
    if any(r < 1 or r & (r - 1) for r in reductions) or list(reductions) != sorted(reductions):
        raise ValueError(f"the encoder's reductions must be increasing powers of two, got {list(reductions)}")
    return int(math.log2(reductions[-1]))


class BackboneUNet(nn.Module):
    """A U-Net decoder over ``encoder``'s feature maps (a ``features_only`` model); see the module docstring.

    ``decoder_channels`` gives each decoder stage's width, deepest first, one per ×2 (five for a stride-32
    encoder). ``bilinear`` selects Up's upsampling; every stage's DoubleConv keeps its own width in the middle.
    Reference weights for the encoder load with ``zoo.load_reference_weights(model.encoder, state_dict)``.
    """

    def __init__(
        self,
        encoder: FeatureListNet,
        num_classes: int,
        decoder_channels: Sequence[int] = DECODER_CHANNELS,
        bilinear: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(getattr(encoder, "feature_info", None), FeatureInfo):
            raise TypeError(f"encoder must be a features_only model with feature_info, got {type(encoder).__name__}")
        check_positive_int("num_classes", num_classes)
        _check_bool("bilinear", bilinear)
        channels, reductions = encoder.feature_info.channels(), encoder.feature_info.reduction()
        num_stages = _check_reductions(reductions)
        if isinstance(decoder_channels, (str, bytes)) or not isinstance(decoder_channels, Sequence):
            raise TypeError(f"decoder_channels must be a sequence of ints, got {decoder_channels!r}")
        decoder_channels = tuple(decoder_channels)
        if len(decoder_channels) != num_stages:
            raise ValueError(
                f"decoder_channels needs one width per ×2 upsampling: {num_stages} for an encoder at reduction "
                f"{reductions[-1]}, got {len(decoder_channels)} ({decoder_channels})"
            )
        for width in decoder_channels:
            check_positive_int("each decoder_channels entry", width)
        self.num_classes, self.in_chans = num_classes, encoder.in_chans
        self.encoder = encoder
        self.skip_indices = _skip_plan(reductions, num_stages)
        in_channels, blocks = channels[-1], []
        for skip_index, out_channels in zip(self.skip_indices, decoder_channels, strict=True):
            skip_channels = 0 if skip_index is None else channels[skip_index]
            blocks.append(Up(in_channels, skip_channels, out_channels, bilinear, mid_channels=out_channels))
            in_channels = out_channels
        self.decoder = nn.ModuleList(blocks)
        self.head = OutConv(in_channels, num_classes)

    @classmethod
    def from_backbone(
        cls,
        backbone: str,
        *,
        num_classes: int = 21,
        in_chans: int = 3,
        decoder_channels: Sequence[int] = DECODER_CHANNELS,
        bilinear: bool = True,
        **backbone_kwargs,
    ) -> BackboneUNet:
        """Build the encoder as ``zoo.create_model(backbone, features_only=True, in_chans=..., **backbone_kwargs)``."""
        encoder = create_model(backbone, features_only=True, in_chans=in_chans, **backbone_kwargs)
        return cls(encoder, num_classes, decoder_channels, bilinear)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_image_batch(x, self.in_chans, type(self).__name__, next(self.parameters()).dtype)
        features = self.encoder(x)
        y = features[-1]
        # A loop over the handful of decoder stages; each may or may not take a skip.
        for block, skip_index in zip(self.decoder, self.skip_indices, strict=True):
            y = block(y, None if skip_index is None else features[skip_index])
        logits = self.head(y)
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"out": logits}


class UnetDecoder(nn.Module):
    """smp's U-Net decoder over an encoder's maps ``[x, f1, …, fn]``; see the module docstring.

    ``encoder_channels`` are the channels of those maps (the input's first); ``decoder_channels`` one width per
    stage, n of them. ``forward(features)`` returns the last stage's map, at the input's size.
    """

    # smp's DoubleConv halves are Sequentials (conv, BN, ReLU) named conv1 and conv2 directly in the block.
    reference_renames = [
        (r"^blocks\.(\d+)\.conv(\d)\.0\.", r"blocks.\1.conv.conv\2.conv."),
        (r"^blocks\.(\d+)\.conv(\d)\.1\.", r"blocks.\1.conv.conv\2.bn."),
    ]

    def __init__(self, encoder_channels: Sequence[int], decoder_channels: Sequence[int] = DECODER_CHANNELS) -> None:
        super().__init__()
        deepest_first = list(encoder_channels[1:])[::-1]  # the input is no skip
        widths = check_decoder_channels(decoder_channels, len(deepest_first))
        in_channels = [deepest_first[0], *widths[:-1]]
        skip_channels = [*deepest_first[1:], 0]
        self.out_channels = widths[-1]
        self.blocks = nn.ModuleList(
            UnetDecoderBlock(c_in, c_skip, c_out)
            for c_in, c_skip, c_out in zip(in_channels, skip_channels, widths, strict=True)
        )

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        maps = list(features[1:])[::-1]
        sizes = [feature.shape[-2:] for feature in features][::-1]  # deepest first, the input's last
        x = maps[0]
        for stage, block in enumerate(self.blocks):
            x = block(x, sizes[stage + 1], maps[stage + 1 : stage + 2])  # no skip after the shallowest map
        return x


@register_model(task="segmentation", input_size=572, min_input_size=16, paper=UNET_PAPER)
def unet(*, num_classes: int = 2, in_chans: int = 3, base_width: int = 64, bilinear: bool = False) -> UNet:
    """The padded U-Net of milesial/Pytorch-UNet (31.0M parameters; 17.3M with ``bilinear=True``)."""
    return UNet(num_classes=num_classes, in_chans=in_chans, base_width=base_width, bilinear=bilinear)


@register_model(task="segmentation", input_size=512, paper=UNET_PAPER)
def unet_mobilenet_v2(
    *,
    num_classes: int = 21,
    in_chans: int = 3,
    decoder_channels: Sequence[int] = DECODER_CHANNELS,
    bilinear: bool = True,
) -> BackboneUNet:
    """U-Net decoder over MobileNetV2's five stages (strides 2..32; the last decoder stage has no skip)."""
    return BackboneUNet.from_backbone(
        "mobilenet_v2", num_classes=num_classes, in_chans=in_chans, decoder_channels=decoder_channels, bilinear=bilinear
    )


@register_model(
    task="segmentation", input_size=512, reference="smp:Unet", reference_kwargs=SMP_RESNET34, paper=UNET_PAPER
)
def unet_resnet34(
    *, num_classes: int = 21, in_chans: int = 3, decoder_channels: Sequence[int] = DECODER_CHANNELS
) -> EncoderDecoder:
    """smp's ``Unet("resnet34", classes=num_classes)``: the U-Net decoder over ResNet-34's stem and four stages
    (24,439,269 parameters at 21 classes); any input size."""
    check_positive_int("num_classes", num_classes)  # before the encoder is built
    encoder = ResNetEncoder("resnet34", in_chans=in_chans)
    decoder = UnetDecoder(encoder.out_channels, decoder_channels)
    head = SegmentationHead(decoder.out_channels, num_classes, kernel_size=3)
    return EncoderDecoder(encoder, decoder, head, name="Unet")
