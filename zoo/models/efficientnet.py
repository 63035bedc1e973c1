"""EfficientNet (Tan & Le, 2019, arXiv:1905.11946) as torchvision defines it.

    stem: 3×3/2 conv-BN-SiLU, 32·w channels                                           (stride 2)
    stage1..stage5: the MBConv stages of the table grouped by output stride, stage k at 2^k  (strides 2..32)
    last_conv: 1×1 conv-BN-SiLU to 4× the last stage's width                          (stride 32)
    head: global average pool → dropout → linear

MBConv is ``zoo.layers.InvertedResidual`` with SiLU, an SE squeezing the expanded width E to C_in/4 (the
block's input width, not E), and stochastic depth whose rate grows linearly from 0 at the first block to
``drop_path_rate · (n − 1)/n`` at the last of n. Compound scaling multiplies every width by w (rounded to a
multiple of 8) and every stage's block count by d (rounded up); B0 is w = d = 1. BN keeps PyTorch's
defaults (eps 1e-5, momentum 0.1), as torchvision's EfficientNet-B* do (only its V2 models use eps 1e-3).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

from torch import nn

from zoo.layers.classifier import ClassifierHead
from zoo.layers.conv_norm_act import ConvNormAct
from zoo.layers.helpers import make_divisible
from zoo.layers.inverted_residual import InvertedResidual
from zoo.layers.squeeze_excite import SqueezeExcite
from zoo.models.mobilenet import MobileNet, check_mobilenet_args
from zoo.registry import TORCHVISION_DOCS, Published, register_model
from zoo.weights import conv_norm_act_renames

__all__ = ["EFFICIENTNET_B0_STAGES", "EfficientNet"]

# The papers, for the model specs.
EFFICIENTNET_PAPER = "Tan & Le 2019, EfficientNet, arXiv:1905.11946"


class MBConvStage(NamedTuple):
    expand_ratio: int
    kernel: int
    stride: int
    out_channels: int
    repeats: int


# EfficientNet-B0 (paper Table 1, stages 2–8): `repeats` MBConv blocks per row, the first with `stride`.
EFFICIENTNET_B0_STAGES = [
    MBConvStage(1, 3, 1, 16, 1),  # stride 2
    MBConvStage(6, 3, 2, 24, 2),  # stride 4
    MBConvStage(6, 5, 2, 40, 2),  # stride 8
    MBConvStage(6, 3, 2, 80, 3),  # stride 16
    MBConvStage(6, 5, 1, 112, 3),  # stride 16
    MBConvStage(6, 5, 2, 192, 4),  # stride 32
    MBConvStage(6, 3, 1, 320, 1),  # stride 32
]


class EfficientNet(MobileNet):
    """EfficientNet-B* classifier; see the module docstring for the layout."""

    reference_head = {"classifier.1": "fc"}

    def __init__(
        self,
        stages: Sequence[MBConvStage] = EFFICIENTNET_B0_STAGES,
        *,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.2,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: str | Callable[..., nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        check_mobilenet_args(num_classes, in_chans, width_mult)
        if not isinstance(depth_mult, (int, float)) or depth_mult <= 0:
            raise ValueError(f"depth_mult must be a positive number, got {depth_mult!r}")
        self.num_classes, self.in_chans = num_classes, in_chans

        def adjust(channels: float) -> int:
            return make_divisible(channels * width_mult, 8)

        in_channels = adjust(32)
        self.stem = ConvNormAct(in_chans, in_channels, 3, stride=2, norm_layer=norm_layer, act_layer=act_layer)
        repeats = [math.ceil(stage.repeats * depth_mult) for stage in stages]
        total_blocks = sum(repeats)
        layers, reference_keys = [], []
        for stage_index, (stage, count) in enumerate(zip(stages, repeats, strict=True), start=1):
            out_channels = adjust(stage.out_channels)
            for block_index in range(count):
                stride = stage.stride if block_index == 0 else 1
                block = InvertedResidual(
                    in_channels, out_channels, stride,
                    expanded_channels=make_divisible(in_channels * stage.expand_ratio, 8),
                    kernel_size=stage.kernel,
                    se_layer=partial(SqueezeExcite, rd_channels=max(1, in_channels // 4), act_layer=act_layer),
                    act_layer=act_layer,
                    norm_layer=norm_layer,
                    drop_path_rate=drop_path_rate * len(layers) / total_blocks,
                )  # fmt: skip
                layers.append((block, stride, out_channels))
                reference_keys.append(f"features.{stage_index}.{block_index}")
                in_channels = out_channels
        self.feature_info, keys = self._add_stages(layers)
        self.num_features = 4 * in_channels
        self.last_conv = ConvNormAct(in_channels, self.num_features, 1, norm_layer=norm_layer, act_layer=act_layer)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        self._init_weights()
        for module in self.modules():
            if isinstance(module, nn.Linear):  # torchvision's EfficientNet init: U(±1/√out_features)
                init_range = 1.0 / math.sqrt(module.out_features)
                nn.init.uniform_(module.weight, -init_range, init_range)

        # torchvision key → zoo key: features.0 is the stem, features.s.b block b of the table's row s,
        # features.{rows + 1} the last conv; its classifier is Sequential(dropout, linear) (reference_head).
        self.reference_renames = conv_norm_act_renames("features.0", "stem")
        for (block, _, _), theirs, ours in zip(layers, reference_keys, keys, strict=True):
            self.reference_renames += block.torchvision_renames(theirs, ours)
        self.reference_renames += conv_norm_act_renames(f"features.{len(stages) + 1}", "last_conv")


@register_model(
    reference="torchvision",
    paper=EFFICIENTNET_PAPER,
    published=Published(5_288_548, 0.386, TORCHVISION_DOCS, 0.05, True),
)
def efficientnet_b0(**kwargs) -> EfficientNet:
    return EfficientNet(EFFICIENTNET_B0_STAGES, width_mult=1.0, depth_mult=1.0, **kwargs)
