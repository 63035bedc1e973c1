"""ResNet (He et al., 2015, arXiv:1512.03385), ResNeXt (Xie et al., 2016, arXiv:1611.05431),
Wide ResNet (Zagoruyko & Komodakis, 2016, arXiv:1605.07146) and SE-ResNet/ResNeXt (Hu et al., 2018,
arXiv:1709.01507), as torchvision and timm define them.

    stem: 7×7/2 conv-BN-ReLU → 3×3/2 max-pool                          (stride 4)
    layer1..layer4: residual stages of `layers[i]` blocks, widths 64·2^i  (strides 4, 8, 16, 32)
    head: global average pool → (dropout) → linear

ResNeXt and Wide ResNet differ from ResNet only in the Bottleneck's `groups` and `base_width`;
SE-ResNets add a SqueezeExcite after each block's last BN (timm's placement and 1/16 reduction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import nn

from zoo.layers import BasicBlock, Bottleneck, ClassifierHead, ConvNormAct, SqueezeExcite
from zoo.layers.residual import RESIDUAL_REFERENCE_RENAMES
from zoo.models.base import FeatureInfo, ImageClassifier, check_classifier_args
from zoo.registry import TORCHVISION_DOCS, Published, register_model

__all__ = ["ResNet"]

# The papers, for the model specs.
RESNET_PAPER = "He et al. 2015, Deep Residual Learning for Image Recognition, arXiv:1512.03385"
RESNEXT_PAPER = "Xie et al. 2016, Aggregated Residual Transformations (ResNeXt), arXiv:1611.05431"
WIDE_RESNET_PAPER = "Zagoruyko & Komodakis 2016, Wide Residual Networks, arXiv:1605.07146"
SE_NET_PAPER = "Hu et al. 2018, Squeeze-and-Excitation Networks, arXiv:1709.01507"
# SENet Table 2 counts the original ResNet layout, stride on the first 1×1 conv of a block; timm's and
# zoo's SE-ResNets put it on the 3×3 ("v1.5"), about 6 % more at 224: hence the wider tolerance.
SE_PAPER = "Hu et al. 2018, SENet Table 2 (ResNet v1 stride layout)"


def _check_dilation_flags(flags: Sequence[bool] | None) -> list[bool]:
    if flags is None:
        return [False, False, False]
    if isinstance(flags, (str, bytes)) or len(flags) != 3 or not all(isinstance(f, bool) for f in flags):
        raise ValueError(
            "replace_stride_with_dilation must be 3 booleans for layer2..layer4, e.g. "
            f"[False, True, True] for output stride 8; got {flags!r}"
        )
    return list(flags)


class ResNet(ImageClassifier):
    """ResNet family classifier; see the module docstring for the layout."""

    reference_renames = RESIDUAL_REFERENCE_RENAMES

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        groups: int = 1,
        width_per_group: int = 64,
        replace_stride_with_dilation: Sequence[bool] | None = None,
        se_layer: Callable[[int], nn.Module] | None = None,
        drop_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_chans)
        if len(layers) != 4:
            raise ValueError(f"layers must give the block count of 4 stages, got {list(layers)}")
        dilate = [False] + _check_dilation_flags(replace_stride_with_dilation)
        self.num_classes = num_classes
        self.in_chans = in_chans
        block_kwargs = dict(
            groups=groups, base_width=width_per_group, se_layer=se_layer,
            norm_layer=norm_layer, act_layer=act_layer,
        )  # fmt: skip

        self.conv1 = ConvNormAct(in_chans, 64, 7, stride=2, norm_layer=norm_layer, act_layer=act_layer)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        in_channels, reduction, dilation = 64, 4, 1
        self.feature_info = FeatureInfo()
        # (planes, stride): layer1 keeps the stem's stride 4; layer2..4 halve the resolution,
        # unless replace_stride_with_dilation trades the stride for dilation (DeepLab).
        for index, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            first_dilation = dilation
            if dilate[index]:
                dilation *= stride
                stride = 1
            reduction *= stride
            blocks = []
            for block_index in range(layers[index]):
                blocks.append(
                    block(
                        in_channels,
                        planes,
                        stride if block_index == 0 else 1,
                        dilation=dilation,
                        first_dilation=first_dilation if block_index == 0 else dilation,
                        **block_kwargs,
                    )
                )
                in_channels = planes * block.expansion
            name = f"layer{index + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.feature_info.append({"num_chs": in_channels, "reduction": reduction, "module": name})

        self.num_features = in_channels
        self.head = ClassifierHead(in_channels, num_classes, drop_rate=drop_rate)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck):
                    nn.init.zeros_(module.conv3.bn.weight)
                elif isinstance(module, BasicBlock):
                    nn.init.zeros_(module.conv2.bn.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _resnet(block, layers, **kwargs) -> ResNet:
    return ResNet(block, layers, **kwargs)


def _seresnet(block, layers, **kwargs) -> ResNet:
    return ResNet(block, layers, se_layer=partial(SqueezeExcite, rd_ratio=1 / 16), **kwargs)


# --- ResNet: blocks per stage (layer1, layer2, layer3, layer4) -------------------------------
@register_model(
    reference="torchvision", paper=RESNET_PAPER, published=Published(11_689_512, 1.814, TORCHVISION_DOCS, 0.01, True)
)
def resnet18(**kwargs) -> ResNet:
    return _resnet(BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model(
    reference="torchvision", paper=RESNET_PAPER, published=Published(21_797_672, 3.664, TORCHVISION_DOCS, 0.01, True)
)
def resnet34(**kwargs) -> ResNet:
    return _resnet(BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model(
    reference="torchvision", paper=RESNET_PAPER, published=Published(25_557_032, 4.089, TORCHVISION_DOCS, 0.01, True)
)
def resnet50(**kwargs) -> ResNet:
    return _resnet(Bottleneck, [3, 4, 6, 3], **kwargs)


@register_model(
    reference="torchvision", paper=RESNET_PAPER, published=Published(44_549_160, 7.801, TORCHVISION_DOCS, 0.01, True)
)
def resnet101(**kwargs) -> ResNet:
    return _resnet(Bottleneck, [3, 4, 23, 3], **kwargs)


@register_model(
    reference="torchvision", paper=RESNET_PAPER, published=Published(60_192_808, 11.514, TORCHVISION_DOCS, 0.01, True)
)
def resnet152(**kwargs) -> ResNet:
    return _resnet(Bottleneck, [3, 8, 36, 3], **kwargs)


# --- ResNeXt: cardinality × bottleneck width per group ----------------------------------------
@register_model(
    reference="torchvision", paper=RESNEXT_PAPER, published=Published(25_028_904, 4.23, TORCHVISION_DOCS, 0.01, True)
)
def resnext50_32x4d(**kwargs) -> ResNet:
    return _resnet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4, **kwargs)


@register_model(
    reference="torchvision", paper=RESNEXT_PAPER, published=Published(88_791_336, 16.414, TORCHVISION_DOCS, 0.01, True)
)
def resnext101_32x8d(**kwargs) -> ResNet:
    return _resnet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=8, **kwargs)


@register_model(
    reference="torchvision", paper=RESNEXT_PAPER, published=Published(83_455_272, 15.46, TORCHVISION_DOCS, 0.01, True)
)
def resnext101_64x4d(**kwargs) -> ResNet:
    return _resnet(Bottleneck, [3, 4, 23, 3], groups=64, width_per_group=4, **kwargs)


# --- Wide ResNet: bottleneck twice as wide ------------------------------------------------------
@register_model(
    reference="torchvision",
    paper=WIDE_RESNET_PAPER,
    published=Published(68_883_240, 11.398, TORCHVISION_DOCS, 0.01, True),
)
def wide_resnet50_2(**kwargs) -> ResNet:
    return _resnet(Bottleneck, [3, 4, 6, 3], width_per_group=128, **kwargs)


@register_model(
    reference="torchvision",
    paper=WIDE_RESNET_PAPER,
    published=Published(126_886_696, 22.753, TORCHVISION_DOCS, 0.01, True),
)
def wide_resnet101_2(**kwargs) -> ResNet:
    return _resnet(Bottleneck, [3, 4, 23, 3], width_per_group=128, **kwargs)


# --- SE-ResNet / SE-ResNeXt (timm) --------------------------------------------------------------
@register_model(reference="timm", paper=SE_NET_PAPER)
def seresnet18(**kwargs) -> ResNet:
    return _seresnet(BasicBlock, [2, 2, 2, 2], **kwargs)


@register_model(reference="timm", paper=SE_NET_PAPER)
def seresnet34(**kwargs) -> ResNet:
    return _seresnet(BasicBlock, [3, 4, 6, 3], **kwargs)


@register_model(reference="timm", paper=SE_NET_PAPER, published=Published(None, 3.87, SE_PAPER, 0.07))
def seresnet50(**kwargs) -> ResNet:
    return _seresnet(Bottleneck, [3, 4, 6, 3], **kwargs)


@register_model(reference="timm", paper=SE_NET_PAPER, published=Published(None, 7.6, SE_PAPER, 0.07))
def seresnet101(**kwargs) -> ResNet:
    return _seresnet(Bottleneck, [3, 4, 23, 3], **kwargs)


@register_model(reference="timm", paper=SE_NET_PAPER, published=Published(None, 11.32, SE_PAPER, 0.07))
def seresnet152(**kwargs) -> ResNet:
    return _seresnet(Bottleneck, [3, 8, 36, 3], **kwargs)


@register_model(reference="timm", paper=SE_NET_PAPER, published=Published(None, 4.25, SE_PAPER, 0.07))
def seresnext50_32x4d(**kwargs) -> ResNet:
    return _seresnet(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4, **kwargs)


@register_model(reference="timm", paper=SE_NET_PAPER, published=Published(None, 8.0, SE_PAPER, 0.07))
def seresnext101_32x4d(**kwargs) -> ResNet:
    return _seresnet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=4, **kwargs)
