"""The FPN segmenter of segmentation_models_pytorch (smp): a feature pyramid (Lin et al., 2017, arXiv:1612.03144)
read by the semantic branch of Panoptic FPN (Kirillov, Girshick, He & Dollár, 2019, arXiv:1901.02446, §3).
``fpn_resnet34`` = ``smp.FPN("resnet34", classes=21)``; the encoder, the head and the size rule are in
:mod:`zoo.models.segmentation.encoder_decoder`.

With the encoder's stride-4 … 32 maps c2 … c5 (ResNet-34: 64, 128, 256, 512 channels), P = 256 and S = 128:

    p5 = 1×1 conv (bias) c5 → P;   p_l = nearest ×2 (p_{l+1}) + 1×1 conv (bias) c_l → P        (l = 4, 3, 2)
    s_l = (3×3 conv-GN(32)-ReLU, then bilinear ×2 if l > 2) repeated max(1, l − 2) times     (every s_l at stride 4)
    y   = dropout2d(0.2)(s5 + s4 + s3 + s2) → head: 1×1 conv (bias) S → K, bilinear ×4 (align_corners=True)

Unlike the detection FPN (:class:`zoo.layers.FeaturePyramidNetwork`) the pyramid has no 3×3 output convs: the
semantic branch's convs take their place. The stride-2 stem map is not used.

Parameters (group norm has 2 per channel, convs into it no bias), with c_l the encoder's channels:
    pyramid  Σ_l (c_l·P + P)                           = 246,784 for ResNet-34
    branch   4·(9·P·S + 2·S) + 3·(9·S² + 2·S)          = 1,623,808 (s5: 3 convs, s4: 2, s3 and s2: 1 each)
    head     S·K + K                                   = 2,709 at K = 21
ResNet-34, K = 21: encoder 21,284,672 + 1,873,301 → 23,157,973. H and W must be divisible by 32, as in smp.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.models.segmentation.encoder_decoder import (
    SMP_RESNET34,
    EncoderDecoder,
    ResNetEncoder,
    SegmentationHead,
    check_positive_int,
)
from zoo.registry import register_model

__all__ = ["FPNDecoder", "SemanticBranch"]

PANOPTIC_FPN_PAPER = "Kirillov et al. 2019, Panoptic Feature Pyramid Networks, arXiv:1901.02446"


class SemanticBranch(nn.Module):
    """Panoptic FPN's per-level branch: ``convs[t]`` (3×3 conv-GN(32)-ReLU) each followed by bilinear ×2
    (align_corners=True) when ``num_upsamples`` > 0; ``max(1, num_upsamples)`` convs, the first C_in → C_out."""

    def __init__(self, in_channels: int, out_channels: int, num_upsamples: int) -> None:
        super().__init__()
        if isinstance(num_upsamples, bool) or not isinstance(num_upsamples, int) or num_upsamples < 0:
            raise ValueError(f"num_upsamples must be an int >= 0, got {num_upsamples!r}")
        group_norm = partial(nn.GroupNorm, 32)
        self.upsample = num_upsamples > 0
        self.convs = nn.ModuleList(
            ConvNormAct(in_channels if t == 0 else out_channels, out_channels, 3, norm_layer=group_norm)
            for t in range(max(1, num_upsamples))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x)
            if self.upsample:
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        return x


class FPNDecoder(nn.Module):
    """smp's FPN decoder over an encoder's maps ``[x, c1, c2, …, c5]`` (it reads the last four); see the module
    docstring. ``laterals[t]`` is the 1×1 conv of c5, c4, c3, c2 in turn, ``branches[t]`` that level's
    SemanticBranch. ``forward(features)`` returns the summed stride-4 map (S channels)."""

    # smp: p5 is a conv, p4…p2 hold theirs as skip_conv; seg_blocks.t.block.u is a Sequential (conv, GN, ReLU).
    reference_renames = [
        (r"^p5\.", "laterals.0."),
        (r"^p4\.skip_conv\.", "laterals.1."),
        (r"^p3\.skip_conv\.", "laterals.2."),
        (r"^p2\.skip_conv\.", "laterals.3."),
        (r"^seg_blocks\.(\d)\.block\.(\d)\.block\.0\.", r"branches.\1.convs.\2.conv."),
        (r"^seg_blocks\.(\d)\.block\.(\d)\.block\.1\.", r"branches.\1.convs.\2.bn."),
    ]

    def __init__(
        self,
        encoder_channels: Sequence[int],
        pyramid_channels: int = 256,
        segmentation_channels: int = 128,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        check_positive_int("pyramid_channels", pyramid_channels)
        check_positive_int("segmentation_channels", segmentation_channels)
        if segmentation_channels % 32:
            raise ValueError(
                f"segmentation_channels must be a multiple of 32 (group norm), got {segmentation_channels}"
            )
        if len(encoder_channels) < 5:
            raise ValueError(f"the FPN decoder reads four maps at strides 4 … 32, got {len(encoder_channels) - 1}")
        deepest_first = list(encoder_channels[-4:])[::-1]
        self.laterals = nn.ModuleList(nn.Conv2d(c, pyramid_channels, 1) for c in deepest_first)
        self.branches = nn.ModuleList(
            SemanticBranch(pyramid_channels, segmentation_channels, num_upsamples) for num_upsamples in (3, 2, 1, 0)
        )
        self.dropout = nn.Dropout2d(dropout)
        self.out_channels = segmentation_channels

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        deepest_first = list(features[-4:])[::-1]
        pyramid = [self.laterals[0](deepest_first[0])]
        for lateral, c in zip(self.laterals[1:], deepest_first[1:], strict=True):
            pyramid.append(F.interpolate(pyramid[-1], scale_factor=2.0, mode="nearest") + lateral(c))
        total = sum(branch(p) for branch, p in zip(self.branches, pyramid, strict=True))
        return self.dropout(total)


@register_model(
    task="segmentation", input_size=512, reference="smp:FPN", reference_kwargs=SMP_RESNET34, paper=PANOPTIC_FPN_PAPER
)
def fpn_resnet34(
    *, num_classes: int = 21, in_chans: int = 3, pyramid_channels: int = 256, segmentation_channels: int = 128
) -> EncoderDecoder:
    """smp's ``FPN("resnet34", classes=num_classes)`` (23,157,973 parameters at 21 classes); H and W divisible
    by 32."""
    check_positive_int("num_classes", num_classes)  # before the encoder is built
    encoder = ResNetEncoder("resnet34", in_chans=in_chans)
    decoder = FPNDecoder(encoder.out_channels, pyramid_channels, segmentation_channels)
    head = SegmentationHead(decoder.out_channels, num_classes, kernel_size=1, upsampling=4)
    return EncoderDecoder(encoder, decoder, head, name="FPN", size_divisor=encoder.output_stride)
