"""SSD's feature extractors: a classifier's stages plus extra layers that keep halving the map.

SSD300 on VGG-16 (Liu et al., 2016, Fig. 2), at 300×300:

    stage1..3 (pool3 with ceil_mode: 75 → 38)  → conv4_3 (512, 38×38) → L2 norm × γ (γ learned, init 20)  "0"
    pool4 → conv5_1..3 → pool5 3×3/1 → fc6 3×3, dilation 6 (1024) → fc7 1×1 (1024, 19×19)               "1"
    extras: 1×1 halving the width, then 3×3 (/2, /2, valid, valid):   512 10×10, 256 5×5, 256 3×3, 256 1×1  "2".."5"

The L2 norm divides every position's 512-vector by its Euclidean norm (``F.normalize``, ε = 1e-12) and scales
channel c by γ_c: y_c = γ_c x_c / max(‖x‖₂, ε) (ParseNet, Liu et al., 2015), because conv4_3's activations are
an order of magnitude larger than the deeper maps'.

SSDlite320 on MobileNetV3-Large with the reduced tail (Howard et al., 2019, sec. 6.3; Sandler et al., 2018,
sec. 6.2), at 320×320:

    blocks up to stride 16, then the expansion of the first stride-32 block (672, 20×20)                  "0"
    the rest of that block, the last two blocks and the 1×1 last conv (480, 10×10)                       "1"
    extras: 1×1 to C/2 → 3×3/2 depthwise → 1×1 to C, each conv BN + ReLU6:  512 5×5, 256 3×3, 256 2×2, 128 1×1

Parameters of an extra block from C_in to C (C/2 in the middle), with biases (VGG) or BN (SSDlite):

    VGG      C_in·C/2 + C/2 + 9·(C/2)·C + C
    SSDlite  C_in·C/2 + 9·C/2 + (C/2)·C + 2·(C/2 + C/2 + C)

Both take torchvision's SSD state_dict: ``reference_key`` moves a key of torchvision's SSD backbone to the key of
torchvision's classifier it came from, and the classifier's own renames do the rest.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.models.mobilenet import MOBILENET_V3_LARGE_BLOCKS, MobileNetV3
from zoo.models.vgg import vgg_stage, vgg_stages, vgg_torchvision_renames
from zoo.weights import nest_reference_renames

__all__ = ["SSDLITE_NORM", "L2Norm", "SSDLiteMobileNetV3Backbone", "SSDVGGBackbone"]

# torchvision's SSDlite batch norm (TensorFlow's object-detection defaults).
SSDLITE_NORM = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)


def freeze_stages(groups: Sequence[Sequence[nn.Module]], trainable_layers: int | None) -> None:
    """Keep the last ``trainable_layers`` of ``groups`` trainable and freeze the others (None: freeze nothing)."""
    if trainable_layers is None:
        return
    if isinstance(trainable_layers, bool) or not isinstance(trainable_layers, int):
        raise TypeError(f"trainable_backbone_layers must be an int or None, got {type(trainable_layers).__name__}")
    if not 0 <= trainable_layers <= len(groups):
        raise ValueError(f"trainable_backbone_layers must be in [0, {len(groups)}], got {trainable_layers}")
    for group in groups[: len(groups) - trainable_layers]:
        for module in group:
            module.requires_grad_(False)


def init_convs(module: nn.Module, init: Callable[[Tensor], object]) -> None:
    """``init`` every convolution's weight in ``module``, and zero its bias (torchvision's SSD initialisations)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            init(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class L2Norm(nn.Module):
    """y_c = γ_c x_c / max(‖x‖₂, 1e-12) over the channels at every position; γ (``channels`` params) starts at
    ``scale``."""

    def __init__(self, channels: int, scale: float = 20.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight.view(1, -1, 1, 1) * F.normalize(x)


# VGG extras: (width C, stride, padding) of the 3×3 conv after a 1×1 to C/2 (C/2 = 128 for the last three).
VGG_EXTRAS = [
    (512, 256, 2, 1),  # conv8_2: 19 → 10
    (256, 128, 2, 1),  # conv9_2: 10 → 5
    (256, 128, 1, 0),  # conv10_2: 5 → 3
    (256, 128, 1, 0),  # conv11_2: 3 → 1
]


class SSDVGGBackbone(nn.Module):
    """VGG-16 cut for SSD300 (module docstring): ``forward(x)`` returns ``{"0": conv4_3 normed, "1": fc7, "2".."5"}``.

    ``trainable_layers`` (None or 0..5) keeps the last VGG stages trainable, as torchvision's; fc6, fc7, the
    extras and the L2 norm always train.
    """

    out_channels = [512, 1024, 512, 256, 256, 256]

    def __init__(self, trainable_layers: int | None = None) -> None:
        super().__init__()
        in_channels = 3
        for index, rows in enumerate(vgg_stages(16), start=1):
            self.add_module(f"stage{index}", vgg_stage(in_channels, rows))
            in_channels = rows[-1][0]
        for module in self.modules():  # the VGG classifier's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        self.stage3[-1].ceil_mode = True  # 75 → 38, the paper's map sizes
        self.stage5[-1] = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)  # pool5 keeps the 19×19 map
        self.l2_norm = L2Norm(512)
        self.fc6 = ConvNormAct(512, 1024, 3, padding=6, dilation=6, bias=True, norm_layer=None)
        self.fc7 = ConvNormAct(1024, 1024, 1, bias=True, norm_layer=None)
        self.extras = nn.ModuleList()
        in_channels = 1024
        for out_channels, middle, stride, padding in VGG_EXTRAS:
            self.extras.append(
                nn.Sequential(
                    ConvNormAct(in_channels, middle, 1, bias=True, norm_layer=None),
                    ConvNormAct(middle, out_channels, 3, stride, padding, bias=True, norm_layer=None),
                )
            )
            in_channels = out_channels
        for module in (self.fc6, self.fc7, self.extras):
            init_convs(module, nn.init.xavier_uniform_)
        freeze_stages([[getattr(self, f"stage{index}")] for index in range(1, 6)], trainable_layers)
        self.reference_renames = vgg_torchvision_renames(vgg_stages(16), with_norm=False)

    @staticmethod
    def reference_key(key: str) -> str:
        """torchvision's SSD300 keys → torchvision VGG-16 keys (conv5 is ``extra.0.1..5`` there, features 24..28)
        and ours for the layers VGG lacks."""
        if match := re.match(r"extra\.0\.7\.([13])\.(.*)", key):
            return f"{'fc6' if match[1] == '1' else 'fc7'}.conv.{match[2]}"
        if match := re.match(r"extra\.0\.(\d+)\.(.*)", key):
            return f"features.{23 + int(match[1])}.{match[2]}"
        if match := re.match(r"extra\.(\d+)\.([02])\.(.*)", key):
            return f"extras.{int(match[1]) - 1}.{int(match[2]) // 2}.conv.{match[3]}"
        return "l2_norm.weight" if key == "scale_weight" else key

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        x = self.stage4[:-1](self.stage3(self.stage2(self.stage1(x))))  # conv4_3
        outputs = [self.l2_norm(x)]
        x = self.fc7(self.fc6(self.stage5(self.stage4[-1](x))))
        outputs.append(x)
        for block in self.extras:
            x = block(x)
            outputs.append(x)
        return OrderedDict((str(index), output) for index, output in enumerate(outputs))


# SSDlite extras: the widths C of the four blocks (C/2 in the middle).
SSDLITE_EXTRAS = [512, 256, 256, 128]

# The parts of MobileNetV3 the extractor keeps (the head goes).
_MOBILENET_PARTS = ["stem", "stage1", "stage2", "stage3", "stage4", "stage5", "last_conv"]


def ssdlite_extra_block(in_channels: int, out_channels: int, norm_layer: Callable[[int], nn.Module]) -> nn.Sequential:
    """1×1 to C/2 → 3×3/2 depthwise → 1×1 to C, each conv-BN-ReLU6 (module docstring)."""
    middle = out_channels // 2
    return nn.Sequential(
        ConvNormAct(in_channels, middle, 1, norm_layer=norm_layer, act_layer=nn.ReLU6),
        ConvNormAct(middle, middle, 3, stride=2, groups=middle, norm_layer=norm_layer, act_layer=nn.ReLU6),
        ConvNormAct(middle, out_channels, 1, norm_layer=norm_layer, act_layer=nn.ReLU6),
    )


class SSDLiteMobileNetV3Backbone(nn.Module):
    """MobileNetV3-Large (reduced tail) cut for SSDlite (module docstring): ``{"0": C4 expansion, "1": C5,
    "2".."5"}``. ``trainable_layers`` (None or 0..6) keeps the last of torchvision's six groups trainable:
    stem + stage1, stage2, stage3, stage4, stage5, last_conv. Every convolution starts from N(0, 0.03²), as in
    torchvision without a pretrained backbone."""

    def __init__(
        self,
        trainable_layers: int | None = None,
        norm_layer: Callable[[int], nn.Module] = SSDLITE_NORM,
        reduced_tail: bool = True,
    ) -> None:
        super().__init__()
        body = MobileNetV3(
            MOBILENET_V3_LARGE_BLOCKS,
            last_channel=1280,
            reduced_tail=reduced_tail,
            num_classes=0,
            norm_layer=norm_layer,
        )
        for name in _MOBILENET_PARTS:
            self.add_module(name, getattr(body, name))
        # torchvision's classifier index of the first stride-32 block: the stem, then every block before it.
        self._split_index = 1 + sum(len(getattr(self, f"stage{k}")) for k in range(1, 5))
        split_block = self.stage5[0]
        if split_block.use_residual or split_block.expand is None:
            raise ValueError("the first stride-32 block must expand and have no residual (torchvision's rule)")
        self.extras = nn.ModuleList()
        in_channels = self.last_conv.conv.out_channels
        for out_channels in SSDLITE_EXTRAS:
            self.extras.append(ssdlite_extra_block(in_channels, out_channels, norm_layer))
            in_channels = out_channels
        self.out_channels = [split_block.expand.conv.out_channels, self.last_conv.conv.out_channels, *SSDLITE_EXTRAS]
        init_convs(self, partial(nn.init.normal_, mean=0.0, std=0.03))
        groups = [[self.stem, self.stage1]] + [[getattr(self, name)] for name in _MOBILENET_PARTS[2:]]
        freeze_stages(groups, trainable_layers)
        self.reference_renames = body.reference_renames + [
            (r"^extra\.(\d+)\.(\d+)\.0\.", r"extras.\1.\2.conv."),
            (r"^extra\.(\d+)\.(\d+)\.1\.", r"extras.\1.\2.bn."),
        ]

    def reference_key(self, key: str) -> str:
        """torchvision's SSDlite keys (``features.0``: the classifier's layers up to the split block's expansion;
        ``features.1``: the rest of that block as one Sequential, then the later layers) → its MobileNetV3 keys."""
        match = re.match(r"features\.([01])\.(\d+)\.(.*)", key)
        if match is None:
            return key
        part, index, rest = int(match[1]), int(match[2]), match[3]
        split = self._split_index
        if part == 0:
            return f"features.{split}.block.0.{rest}" if index == split else f"features.{index}.{rest}"
        if index == 0:  # the split block's depthwise conv, SE and projection: a slice keeping their indices
            return f"features.{split}.block.{rest}"
        return f"features.{split + index}.{rest}"

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        for name in _MOBILENET_PARTS[:5]:
            x = getattr(self, name)(x)
        x = self.stage5[0].expand(x)
        outputs = [x]
        x = self.last_conv(self.stage5[1:](self.stage5[0].forward_expanded(x)))
        outputs.append(x)
        for block in self.extras:
            x = block(x)
            outputs.append(x)
        return OrderedDict((str(index), output) for index, output in enumerate(outputs))


def backbone_renames(backbone: nn.Module) -> list[tuple[str, str]]:
    """The backbone's rules, seen from the detector (under ``backbone.``)."""
    return nest_reference_renames("backbone", backbone.reference_renames)
