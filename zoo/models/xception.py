"""Xception (Chollet, 2016, arXiv:1610.02357), as timm's ``legacy_xception`` defines it: Inception modules
taken to the limit, every convolution after the stem a depthwise-separable one (zoo.layers.xception).

    stem: 3×3/2 conv-BN-ReLU → 3×3 conv-BN-ReLU, both valid-padded            (stride 2)
    entry flow: 3 residual blocks, widths 128, 256, 728, each ending in a 3×3/2 max-pool
                                                                               (strides 4, 8, 16)
    middle flow: 8 residual blocks of 3 separable convs at width 728          (stride 16)
    exit flow: a residual block to 1024 with a max-pool, then separable conv-BN-ReLU to 1536 and 2048
                                                                               (stride 32)
    head: global average pool → (dropout) → linear

The valid stem makes the maps at the 299×299 input 147, 74, 37, 19 and 10 pixels wide: ``feature_info`` records
the nominal reductions 2, 4, 8, 16, 32, as timm does. Its block taps are the block outputs; timm's are the
same maps after the ReLU that opens the next block.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from zoo.layers import ConvNormAct
from zoo.layers.classifier import ClassifierHead
from zoo.layers.xception import XCEPTION_BLOCK_REFERENCE_RENAMES, SeparableConv2d, XceptionBlock
from zoo.models.base import FeatureInfo, ImageClassifier, check_classifier_args
from zoo.registry import register_model

__all__ = ["Xception"]

# The papers, for the model specs.
XCEPTION_PAPER = "Chollet 2016, Xception, arXiv:1610.02357"

# (in, out, separable convs, stride, start_with_relu, grow_first)           output stride
_XCEPTION_BLOCKS = [
    (64, 128, 2, 2, False, True),  # block1, entry flow                     4
    (128, 256, 2, 2, True, True),  # block2                                 8
    (256, 728, 2, 2, True, True),  # block3                                 16
    *[(728, 728, 3, 1, True, True)] * 8,  # block4–block11, middle flow     16
    (728, 1024, 2, 2, True, False),  # block12, exit flow                   32
]


def _separable_conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv=SeparableConv2d(in_channels, out_channels, 3, padding=1),
            bn=nn.BatchNorm2d(out_channels),
            act=nn.ReLU(inplace=True),
        )
    )


class Xception(ImageClassifier):
    """Xception classifier; see the module docstring for the layout."""

    reference_renames = [
        # timm's stem and exit-flow conv/bn pairs are one module each here.
        (r"^conv([12])\.weight$", r"conv\1.conv.weight"),
        (r"^bn(\d)\.", r"conv\1.bn."),
        (r"^conv([34])\.(conv1|pointwise)\.", r"conv\1.conv.\2."),
        *XCEPTION_BLOCK_REFERENCE_RENAMES,
    ]

    def __init__(self, *, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_chans)
        self.num_classes = num_classes
        self.in_chans = in_chans

        self.conv1 = ConvNormAct(in_chans, 32, 3, stride=2, padding=0)
        self.conv2 = ConvNormAct(32, 64, 3, padding=0)  # stride 2
        for index, (in_channels, out_channels, reps, stride, start_with_relu, grow_first) in enumerate(
            _XCEPTION_BLOCKS, start=1
        ):
            block = XceptionBlock(
                in_channels, out_channels, reps, stride, start_with_relu=start_with_relu, grow_first=grow_first
            )
            self.add_module(f"block{index}", block)
        self.conv3 = _separable_conv_bn_relu(1024, 1536)
        self.conv4 = _separable_conv_bn_relu(1536, 2048)  # stride 32
        self.feature_info = FeatureInfo(
            [
                {"num_chs": 64, "reduction": 2, "module": "conv2"},
                {"num_chs": 128, "reduction": 4, "module": "block1"},
                {"num_chs": 256, "reduction": 8, "module": "block2"},
                {"num_chs": 728, "reduction": 16, "module": "block11"},
                {"num_chs": 2048, "reduction": 32, "module": "conv4"},
            ]
        )

        self.num_features = 2048
        self.head = ClassifierHead(2048, num_classes, drop_rate=drop_rate)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name, module in self.named_children():
            if name not in self.head_modules:
                x = module(x)
        return x


# Published at 299; the valid stem needs (H − 3)/2 + 1 − 2 ≥ 1.
@register_model(input_size=299, min_input_size=7, reference="timm:legacy_xception", paper=XCEPTION_PAPER)
def xception(**kwargs) -> Xception:
    return Xception(**kwargs)
