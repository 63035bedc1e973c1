"""U-Net++ (Zhou, Siddiquee, Tajbakhsh & Liang, 2018, "UNet++: A Nested U-Net Architecture for Medical Image
Segmentation", arXiv:1807.10165) as segmentation_models_pytorch (smp) builds it: ``unetplusplus_resnet34`` =
``smp.UnetPlusPlus("resnet34", classes=21)``. The encoder, the head and the size rule are in
:mod:`zoo.models.segmentation.encoder_decoder`.

The skips of U-Net become dense paths of nested decoder nodes. With the encoder maps X^{i,0} = f_{i+1} (i = 0 … 4:
the stem and layer1 … layer4 of a ResNet, C_i = 64, 64, 128, 256, 512 channels for ResNet-34) and n = 5 levels:

    X^{i,j} = Block(up(X^{i+1,j−1}), [X^{i,j−1}, …, X^{i,1}, X^{i,0}])     j ≥ 1, i + j ≤ n − 1
    out     = Block(up(X^{0,n−1}))                                          the extra stage to the input's size

where Block is a UnetDecoderBlock (nearest ×2 to the size of X^{i,0}, concatenation in the order written, then a
DoubleConv) and the same-level nodes are taken newest first, as smp concatenates them. Widths: a node on the
outer diagonal (i + j = n − 1, the path of the plain U-Net) has the decoder width D_{n−2−i} of D =
decoder_channels (256, 128, 64, 32, 16); every inner node keeps its level's C_i; the last stage gives D_{n−1}.
So node X^{i,j} takes c_in = width of X^{i+1,j−1} (C_{i+1} for j = 1) and c_skip = j·C_i channels, and

    params(X^{i,j}) = 9·(c_in + c_skip)·c_out + 9·c_out² + 4·c_out           (DoubleConv with batch norm)

ResNet-34, K = 21: encoder 21,284,672 + decoder 4,793,792 (ten nodes and the last stage) + head 9·16·K + K = 3,045
→ 26,081,509. Each ×2 must land on the encoder's own sizes, so H and W must be divisible by 32, as in smp.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.layers.unet import UnetDecoderBlock
from zoo.models.segmentation.encoder_decoder import (
    SMP_RESNET34,
    EncoderDecoder,
    ResNetEncoder,
    SegmentationHead,
    check_decoder_channels,
    check_positive_int,
)
from zoo.models.segmentation.unet import DECODER_CHANNELS
from zoo.registry import register_model

__all__ = ["UnetPlusPlusDecoder"]

UNETPLUSPLUS_PAPER = "Zhou et al. 2018, UNet++: A Nested U-Net Architecture, arXiv:1807.10165"


class UnetPlusPlusDecoder(nn.Module):
    """smp's U-Net++ decoder over an encoder's maps ``[x, f1, …, fn]``; ``nodes["x_{i}_{j}"]`` is X^{i,j} and
    ``final`` the last stage (module docstring). ``forward(features)`` returns the map at the input's size."""

    def __init__(self, encoder_channels: Sequence[int], decoder_channels: Sequence[int] = DECODER_CHANNELS) -> None:
        super().__init__()
        channels = list(encoder_channels[1:])  # C_i of X^{i,0}; the input is no skip
        levels = len(channels)
        widths = check_decoder_channels(decoder_channels, levels)
        self.levels, self.out_channels = levels, widths[-1]

        def width(i: int, j: int) -> int:
            return widths[levels - 2 - i] if j > 0 and i + j == levels - 1 else channels[i]

        self.nodes = nn.ModuleDict(
            {
                f"x_{i}_{j}": UnetDecoderBlock(width(i + 1, j - 1), j * channels[i], width(i, j))
                for j in range(1, levels)
                for i in range(levels - j)
            }
        )
        self.final = UnetDecoderBlock(width(0, levels - 1), 0, widths[-1])
        # smp names node X^{i,j} x_{d}_{k}, with k = n − 2 − i its level counted from the deepest skip and
        # d = k + 1 − j; its last stage is x_0_{n−1}. Each DoubleConv half is a (conv, BN, ReLU) Sequential there.
        self.reference_renames = [
            (rf"^blocks\.x_{levels - 1 - i - j}_{levels - 2 - i}\.", f"nodes.x_{i}_{j}.")
            for j in range(1, levels)
            for i in range(levels - j)
        ]
        self.reference_renames += [
            (rf"^blocks\.x_0_{levels - 1}\.", "final."),
            (r"^(nodes\.x_\d+_\d+|final)\.conv(\d)\.0\.", r"\1.conv.conv\2.conv."),
            (r"^(nodes\.x_\d+_\d+|final)\.conv(\d)\.1\.", r"\1.conv.conv\2.bn."),
        ]

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        grid = {(i, 0): feature for i, feature in enumerate(features[1:])}
        for j in range(1, self.levels):  # column by column: each needs the one before
            for i in range(self.levels - j):
                same_level = [grid[i, column] for column in reversed(range(j))]
                grid[i, j] = self.nodes[f"x_{i}_{j}"](grid[i + 1, j - 1], same_level[-1].shape[-2:], same_level)
        return self.final(grid[0, self.levels - 1], features[0].shape[-2:])


@register_model(
    task="segmentation",
    input_size=512,
    reference="smp:UnetPlusPlus",
    reference_kwargs=SMP_RESNET34,
    paper=UNETPLUSPLUS_PAPER,
)
def unetplusplus_resnet34(
    *, num_classes: int = 21, in_chans: int = 3, decoder_channels: Sequence[int] = DECODER_CHANNELS
) -> EncoderDecoder:
    """smp's ``UnetPlusPlus("resnet34", classes=num_classes)`` (26,081,509 parameters at 21 classes); H and W
    divisible by 32."""
    check_positive_int("num_classes", num_classes)  # before the encoder is built
    encoder = ResNetEncoder("resnet34", in_chans=in_chans)
    decoder = UnetPlusPlusDecoder(encoder.out_channels, decoder_channels)
    head = SegmentationHead(decoder.out_channels, num_classes, kernel_size=3)
    return EncoderDecoder(encoder, decoder, head, name="UnetPlusPlus", size_divisor=encoder.output_stride)
