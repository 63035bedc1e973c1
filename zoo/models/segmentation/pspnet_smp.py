"""The PSPNet of segmentation_models_pytorch (smp): ``pspnet_resnet34`` = ``smp.PSPNet("resnet34", classes=21)``.
The encoder, the head and the size rule are in :mod:`zoo.models.segmentation.encoder_decoder`; the pyramid pooling
block in :mod:`zoo.layers.pyramid_pooling`.

This is not the paper's PSPNet (Zhao et al., 2017, arXiv:1612.01105), which dilates a ResNet-50 to keep its last
stages at stride 8, pools layer4's 2048 channels, ends in a 3×3 conv-BN-ReLU and a 1×1 classifier, and trains with
an auxiliary head. smp instead stops the encoder at depth 3 (ResNet-34's layer2, 128 channels at stride 8, no
dilation) and pools that:

    f3 (C = 128, /8) → PyramidPooling(bins 1, 2, 3, 6; C/4 each) → [branches, f3] (2C)
                     → 1×1 conv-BN-ReLU 2C → 512 → dropout2d(0.2)
                     → head: 3×3 conv (bias) 512 → K, bilinear ×8 (align_corners=True)

As in smp, ResNet-34's layer3 and layer4 stay in the encoder without being run: their 19,936,768 parameters count
and load (so the state_dicts match) but get no gradient.

Parameters: pyramid 4·C·(C/4) + 7·(C/4) = 16,608; 1×1 conv-BN 2C·512 + 2·512 = 132,096; head 9·512·K + K =
96,789 at K = 21. ResNet-34: encoder 21,284,672 + 245,493 → 21,530,165. H and W must be divisible by 8, as in smp.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.layers.pyramid_pooling import PyramidPooling
from zoo.models.segmentation.encoder_decoder import (
    SMP_RESNET34,
    EncoderDecoder,
    ResNetEncoder,
    SegmentationHead,
    check_positive_int,
)
from zoo.registry import register_model

__all__ = ["PSPDecoder"]

PSPNET_PAPER = "Zhao et al. 2017, Pyramid Scene Parsing Network, arXiv:1612.01105 (smp's variant, not the paper's)"


class PSPDecoder(nn.Module):
    """smp's PSP decoder over an encoder's maps (it reads the last): ``pyramid`` → ``bottleneck`` (1×1
    conv-BN-ReLU to ``out_channels``) → ``dropout``."""

    # smp: psp.blocks.b.pool is a Sequential (pool, (conv, BN, ReLU)); conv is a (conv, BN, ReLU) Sequential.
    reference_renames = [
        (r"^psp\.blocks\.(\d+)\.pool\.1\.0\.", r"pyramid.branches.\1.conv."),
        (r"^psp\.blocks\.(\d+)\.pool\.1\.1\.", r"pyramid.branches.\1.bn."),
        (r"^conv\.0\.", "bottleneck.conv."),
        (r"^conv\.1\.", "bottleneck.bn."),
    ]

    def __init__(self, encoder_channels: Sequence[int], out_channels: int = 512, dropout: float = 0.2) -> None:
        super().__init__()
        check_positive_int("out_channels", out_channels)
        self.pyramid = PyramidPooling(encoder_channels[-1], bins=(1, 2, 3, 6))
        self.bottleneck = ConvNormAct(self.pyramid.out_channels, out_channels, 1)
        self.dropout = nn.Dropout2d(dropout)
        self.out_channels = out_channels

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.dropout(self.bottleneck(self.pyramid(features[-1])))


@register_model(
    task="segmentation",
    input_size=512,
    min_input_size=8,
    reference="smp:PSPNet",
    reference_kwargs=SMP_RESNET34,
    paper=PSPNET_PAPER,
)
def pspnet_resnet34(*, num_classes: int = 21, in_chans: int = 3, psp_out_channels: int = 512) -> EncoderDecoder:
    """smp's ``PSPNet("resnet34", classes=num_classes)``: pyramid pooling on ResNet-34's layer2 (21,530,165
    parameters at 21 classes, 19,936,768 of them in the unused layer3 and layer4); H and W divisible by 8."""
    check_positive_int("num_classes", num_classes)  # before the encoder is built
    encoder = ResNetEncoder("resnet34", depth=3, in_chans=in_chans)
    decoder = PSPDecoder(encoder.out_channels, psp_out_channels)
    head = SegmentationHead(decoder.out_channels, num_classes, kernel_size=3, upsampling=8)
    return EncoderDecoder(encoder, decoder, head, name="PSPNet", size_divisor=encoder.output_stride)
