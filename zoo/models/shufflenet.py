"""ShuffleNet V2 (Ma et al., 2018, arXiv:1807.11164), as torchvision defines it.

    stem:   3×3/2 conv-BN-ReLU (24 channels) → 3×3/2 max-pool                       (stride 4)
    stage2..stage4: 4, 8, 4 ShuffleV2Blocks, the first of each with stride 2       (strides 8, 16, 32)
    conv5:  1×1 conv-BN-ReLU to 1024 (2048 at width 2.0)                            (stride 32)
    head:   global average pool → (dropout) → linear

The width multiplier scales the stage channels only (the paper's Table 5). With C₁..C₅ the widths of
conv1, stage2..4 and conv5, K classes and Pₛ the number of positions at stride s:
    conv1:  params = 9·C_in·C₁ + 2·C₁          MACs = P₂·9·C_in·C₁
    stages: per unit, see :class:`~zoo.layers.shuffle.ShuffleV2Block`
    conv5:  params = C₄·C₅ + 2·C₅              MACs = P₃₂·C₄·C₅
    fc:     params = C₅·K + K                  MACs = C₅·K
(plus 2 MACs per batch-norm output element and one per pooled element, as zoo.analysis counts them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from zoo.layers.classifier import ClassifierHead
from zoo.layers.conv_norm_act import ConvNormAct
from zoo.layers.shuffle import SHUFFLE_REFERENCE_RENAMES, ShuffleV2Block
from zoo.models.base import FeatureInfo, ImageClassifier, check_classifier_args
from zoo.registry import TORCHVISION_DOCS, Published, register_model

__all__ = ["SHUFFLENET_V2_CHANNELS", "ShuffleNetV2"]

# The papers, for the model specs.
SHUFFLENET_V2_PAPER = "Ma et al. 2018, ShuffleNet V2, arXiv:1807.11164"

# Output channels per width multiplier (paper Table 5, torchvision's stages_out_channels).
#        conv1  stage2  stage3  stage4  conv5
SHUFFLENET_V2_CHANNELS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}

# (stage, units): the first unit of each stage halves the resolution.
SHUFFLENET_V2_STAGES = [
    ("stage2", 4),  # output stride 8
    ("stage3", 8),  # output stride 16
    ("stage4", 4),  # output stride 32
]

# torchvision key → zoo key: the stem's and conv5's Sequential(conv, BN, ReLU) are ConvNormActs here.
SHUFFLENET_REFERENCE_RENAMES = [
    (r"^conv([15])\.0\.", r"conv\1.conv."),
    (r"^conv([15])\.1\.", r"conv\1.bn."),
    *SHUFFLE_REFERENCE_RENAMES,
]


class ShuffleNetV2(ImageClassifier):
    """ShuffleNet V2 classifier; see the module docstring for the layout.

    ``feature_info``: the max-pool output (reduction 4), stage2 (8), stage3 (16) and conv5 (32). conv5 rather
    than stage4 closes the list because it is what ``forward_features`` returns, at the same reduction.
    """

    reference_renames = SHUFFLENET_REFERENCE_RENAMES

    def __init__(
        self,
        channels: Sequence[int],
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_chans)
        if len(channels) != 5:
            raise ValueError(f"channels must give (conv1, stage2, stage3, stage4, conv5) widths, got {list(channels)}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        norm_act = dict(norm_layer=norm_layer, act_layer=act_layer)

        self.conv1 = ConvNormAct(in_chans, channels[0], 3, stride=2, **norm_act)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = channels[0]
        for (name, units), out_channels in zip(SHUFFLENET_V2_STAGES, channels[1:4], strict=True):
            blocks = [ShuffleV2Block(in_channels, out_channels, 2, **norm_act)]
            blocks += [ShuffleV2Block(out_channels, out_channels, 1, **norm_act) for _ in range(units - 1)]
            self.add_module(name, nn.Sequential(*blocks))
            in_channels = out_channels
        self.conv5 = ConvNormAct(in_channels, channels[4], 1, **norm_act)

        self.feature_info = FeatureInfo(
            [
                {"num_chs": channels[0], "reduction": 4, "module": "maxpool"},
                {"num_chs": channels[1], "reduction": 8, "module": "stage2"},
                {"num_chs": channels[2], "reduction": 16, "module": "stage3"},
                {"num_chs": channels[4], "reduction": 32, "module": "conv5"},
            ]
        )
        self.num_features = channels[4]
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.conv5(self.stage4(self.stage3(self.stage2(x))))


# --- width multipliers ×0.5, ×1.0, ×1.5, ×2.0 ----------------------------------------------------------
@register_model(
    reference="torchvision",
    paper=SHUFFLENET_V2_PAPER,
    published=Published(1_366_792, 0.04, TORCHVISION_DOCS, 0.07, True),
)
def shufflenet_v2_x0_5(**kwargs) -> ShuffleNetV2:
    return ShuffleNetV2(SHUFFLENET_V2_CHANNELS[0.5], **kwargs)


@register_model(
    reference="torchvision",
    paper=SHUFFLENET_V2_PAPER,
    published=Published(2_278_604, 0.145, TORCHVISION_DOCS, 0.05, True),
)
def shufflenet_v2_x1_0(**kwargs) -> ShuffleNetV2:
    return ShuffleNetV2(SHUFFLENET_V2_CHANNELS[1.0], **kwargs)


@register_model(
    reference="torchvision",
    paper=SHUFFLENET_V2_PAPER,
    published=Published(3_503_624, 0.296, TORCHVISION_DOCS, 0.05, True),
)
def shufflenet_v2_x1_5(**kwargs) -> ShuffleNetV2:
    return ShuffleNetV2(SHUFFLENET_V2_CHANNELS[1.5], **kwargs)


@register_model(
    reference="torchvision",
    paper=SHUFFLENET_V2_PAPER,
    published=Published(7_393_996, 0.583, TORCHVISION_DOCS, 0.05, True),
)
def shufflenet_v2_x2_0(**kwargs) -> ShuffleNetV2:
    return ShuffleNetV2(SHUFFLENET_V2_CHANNELS[2.0], **kwargs)
