"""LR-ASPP, the Lite Reduced ASPP of MobileNetV3 (Howard et al., 2019, arXiv:1905.02244, section 6.4), as
torchvision's ``models.segmentation.lraspp_mobilenet_v3_large``.

A segmentation head cheap enough for a mobile backbone: instead of ASPP's parallel atrous branches, one 1×1
branch on the deepest map, re-weighted per channel by a squeeze-and-excite style gate, plus a linear read-out
of a shallower map for the boundaries:

    high (stride 16, 960 ch) → 1×1 conv-BN-ReLU (128) ──────────┐
    high → global average pool → 1×1 conv (128) → sigmoid ──── × → bilinear to low → 1×1 conv (C) ─┐
    low  (stride 8, 40 ch)   → 1×1 conv (C) ─────────────────────────────────────────────────────── + → bilinear ×8

The paper pools with a large 49×49 kernel (stride 16, 20) at 1024×2048 Cityscapes crops; torchvision, whose
weights people load, pools globally, and so does this. The backbone is MobileNetV3-Large with its last stage
dilated (output stride 16); "low" is the output of the first block of the stride-8 stage (torchvision's
``features[4]``, 40 channels), "high" the last 1×1 conv (960).

Head parameters for C classes, low channels L, high channels H and 128 inner channels:

    LRASPPHead = H·128 + 2·128 (cbr) + H·128 (scale) + L·C + C + 128·C + C

at C = 21, L = 40, H = 960: 246,016 + 861 + 2,709 = 249,586; with MobileNetV3-Large's 2,971,952 feature
parameters (without its classifier), 3,221,538 as torchvision documents.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.registry import TORCHVISION_DOCS, Published, create_model, register_model
from zoo.weights import nest_reference_renames

from .deeplab import NO_DOWNLOAD, DeepLabV3Plus, _check_builder_args, _check_positive

__all__ = ["LRASPP", "LRASPPHead"]

MOBILENET_V3_PAPER = "Howard et al. 2019, Searching for MobileNetV3 (LR-ASPP: section 6.4), arXiv:1905.02244"


class LRASPPHead(nn.Module):
    """``cbr`` (1×1 conv-BN-ReLU) on the high map, gated by ``scale`` (global pool → 1×1 conv → sigmoid),
    upsampled to the low map and read out by ``high_classifier``, plus ``low_classifier`` on the low map."""

    def __init__(self, low_channels: int, high_channels: int, num_classes: int, inter_channels: int = 128) -> None:
        super().__init__()
        for name, value in (("low_channels", low_channels), ("high_channels", high_channels)):
            _check_positive(name, value)
        _check_positive("num_classes", num_classes)
        self.cbr = ConvNormAct(high_channels, inter_channels, 1)
        self.scale = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_channels, inter_channels, 1, bias=False), nn.Sigmoid()
        )
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter_channels, num_classes, 1)
        # torchvision's cbr is Sequential(conv, BN, ReLU).
        self.reference_renames = [(r"^cbr\.0\.", "cbr.conv."), (r"^cbr\.1\.", "cbr.bn.")]

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        x = self.cbr(high) * self.scale(high)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)


class LRASPP(DeepLabV3Plus):
    """``backbone`` → :class:`LRASPPHead` on the deep ``out_layer`` map and the shallow ``low_level_layer``
    map → bilinear to the input. The wiring is DeepLabv3+'s (a head reading a deep and a shallow map); there
    is no auxiliary head, as in torchvision."""


@register_model(
    task="segmentation",
    input_size=520,
    reference="torchvision",
    reference_kwargs=NO_DOWNLOAD,
    paper=MOBILENET_V3_PAPER,
    # Not conv + linear alone (1.980 at 520 px, measured): torchvision's 2.086 also counts the elementwise
    # work that a mobile network's activations and gates make a visible share of; fvcore's total is 2.059.
    published=Published(3_221_538, 2.086, TORCHVISION_DOCS, 0.05),
)
def lraspp_mobilenet_v3_large(*, num_classes: int = 21, in_chans: int = 3) -> LRASPP:
    _check_builder_args(num_classes, False)
    backbone = create_model("mobilenet_v3_large", features_only=True, dilated=True, in_chans=in_chans)
    high_info = backbone.feature_info[-1]
    low_layer = next(info["module"] for info in backbone.feature_info if info["reduction"] == 8) + ".0"
    low_channels = backbone.get_submodule(low_layer).project.conv.out_channels
    # torchvision's backbone is MobileNetV3's ``features`` Sequential itself: backbone.i = features.i.
    backbone_renames = [(r"^backbone\.(\d+)\.", r"backbone.features.\1.")]
    backbone_renames += nest_reference_renames("backbone", backbone.reference_renames)
    return LRASPP(
        backbone,
        LRASPPHead(low_channels, high_info["num_chs"], num_classes),
        out_layer=high_info["module"],
        low_level_layer=low_layer,
        backbone_renames=backbone_renames,
    )
