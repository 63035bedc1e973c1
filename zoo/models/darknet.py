"""Darknet-53 (Redmon & Farhadi, 2018, "YOLOv3: An Incremental Improvement", arXiv:1804.02767, Table 1),
the ImageNet classifier that is YOLOv3's backbone.

    stem:   3×3 conv, 32 channels                                                   (stride 1)
    stage1..stage5: a 3×3/2 conv to C = 64·2^(i-1), then 1, 2, 8, 8, 4 residual blocks
            x + conv3×3(C/2 → C)(conv1×1(C → C/2)(x))                             (strides 2 .. 32)
    head:   global average pool → linear

Every conv is bias-free and followed by batch norm and LeakyReLU(0.1); the residual sum has no activation
(Darknet's linear ``shortcut`` layer). With C_in the channels entering a stage, C its width and K classes:
    stem:        params = 27·32 + 2·32
    down-conv:   params = 9·C_in·C + 2·C                  MACs = H·W·9·C_in·C      (H×W: the stage's output)
    block:       params = C·C/2 + 2·C/2 + 9·(C/2)·C + 2·C = 5·C² + 3·C      MACs = H·W·5·C²
    fc:          params = 1024·K + K
which gives 41,609,928 parameters at K = 1000 (timm's ``darknet53`` has the same layers; its default
LeakyReLU slope is 0.01, the paper's Darknet uses 0.1).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import nn

from zoo.layers.classifier import ClassifierHead
from zoo.layers.conv_norm_act import ConvNormAct
from zoo.models.base import FeatureInfo, ImageClassifier, check_classifier_args
from zoo.registry import register_model

__all__ = ["DARKNET53_STAGES", "Darknet", "DarknetBlock", "darknet_leaky_relu"]

# The papers, for the model specs.
YOLOV3_PAPER = "Redmon & Farhadi 2018, YOLOv3: An Incremental Improvement, arXiv:1804.02767"

# Residual blocks per stage (YOLOv3 Table 1); stage i has 64·2^(i-1) channels and stride 2^i.
DARKNET53_STAGES = (1, 2, 8, 8, 4)

# Darknet's "leaky" activation: slope 0.1 for negative inputs (nn.LeakyReLU defaults to 0.01).
darknet_leaky_relu = partial(nn.LeakyReLU, negative_slope=0.1, inplace=True)

# timm's darknet53 (timm.models.cspnet): stem.conv1.*, stages.<i>.{conv_down,blocks}.*, head.fc.*.
DARKNET_REFERENCE_RENAMES = [
    (r"^stem\.conv1\.", "stem."),
    *[(rf"^stages\.{i}\.", f"stage{i + 1}.") for i in range(len(DARKNET53_STAGES))],
]


class DarknetBlock(nn.Module):
    """Darknet's residual unit: ``x + conv3×3(C/2 → C)(conv1×1(C → C/2)(x))``, each conv with BN and activation.

    params = 5·C² + 3·C, MACs = 5·C²·H·W for ``channels = C`` on an H×W map.
    """

    def __init__(
        self,
        channels: int,
        *,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: str | Callable[..., nn.Module] = darknet_leaky_relu,
    ) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"DarknetBlock halves its width in the 1×1 conv: channels must be even, got {channels}")
        self.conv1 = ConvNormAct(channels, channels // 2, 1, norm_layer=norm_layer, act_layer=act_layer)
        self.conv2 = ConvNormAct(channels // 2, channels, 3, norm_layer=norm_layer, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class Darknet(ImageClassifier):
    """Darknet classifier; see the module docstring for the layout."""

    reference_renames = DARKNET_REFERENCE_RENAMES
    reference_head = {"head.fc": "fc"}

    def __init__(
        self,
        blocks_per_stage: Sequence[int] = DARKNET53_STAGES,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        stem_channels: int = 32,
        drop_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: str | Callable[..., nn.Module] = darknet_leaky_relu,
    ) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_chans)
        if len(blocks_per_stage) == 0 or not all(isinstance(n, int) and n >= 0 for n in blocks_per_stage):
            raise ValueError(f"blocks_per_stage must be non-negative ints, one per stage, got {blocks_per_stage!r}")
        self.num_classes, self.in_chans = num_classes, in_chans
        layer_kwargs = dict(norm_layer=norm_layer, act_layer=act_layer)
        self.stem = ConvNormAct(in_chans, stem_channels, 3, **layer_kwargs)

        self.feature_info = FeatureInfo()
        in_channels = stem_channels
        for index, num_blocks in enumerate(blocks_per_stage):
            # Each stage doubles the width with a stride-2 3×3 conv, then keeps it through its residual blocks.
            channels = in_channels * 2
            stage = nn.Sequential(
                OrderedDict(
                    conv_down=ConvNormAct(in_channels, channels, 3, stride=2, **layer_kwargs),
                    blocks=nn.Sequential(*[DarknetBlock(channels, **layer_kwargs) for _ in range(num_blocks)]),
                )
            )
            name = f"stage{index + 1}"
            self.add_module(name, stage)
            self.feature_info.append({"num_chs": channels, "reduction": 2 ** (index + 1), "module": name})
            in_channels = channels

        self.num_features = in_channels
        self.head = ClassifierHead(in_channels, num_classes, drop_rate=drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.1, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for info in self.feature_info:
            x = getattr(self, info["module"])(x)
        return x


# The paper trains and tests the ImageNet classifier at 256×256 (YOLOv3 Table 2).
# timm's darknet53 uses LeakyReLU(0.01); Darknet's is 0.1.
@register_model(
    input_size=256, reference="timm", reference_kwargs={"act_layer": darknet_leaky_relu}, paper=YOLOV3_PAPER
)
def darknet53(*, num_classes: int = 1000, **kwargs) -> Darknet:
    """Darknet-53: 1, 2, 8, 8, 4 residual blocks in its five stages (YOLOv3 Table 1)."""
    return Darknet(DARKNET53_STAGES, num_classes=num_classes, **kwargs)
