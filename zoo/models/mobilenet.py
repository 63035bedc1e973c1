"""MobileNetV1 (Howard et al., 2017, arXiv:1704.04861) as timm defines it, MobileNetV2 (Sandler et al., 2018,
arXiv:1801.04381) and MobileNetV3 (Howard et al., 2019, arXiv:1905.02244) as torchvision defines them.

    stem: 3×3/2 conv-BN-act                                                         (stride 2)
    stage1..stage5: the blocks of the table, stage k holding those at output stride 2^k  (strides 2..32)
    last_conv: 1×1 conv-BN-act widening the last stage (MobileNetV2 and V3)         (stride 32)
    head: global average pool → dropout → linear   (V3: linear → hard-swish → dropout → linear)

V1 stacks depthwise-separable convolutions, ``1/C_out + 1/k²`` of the cost of the standard convolutions
they replace; V2 and V3 stack inverted residuals (``zoo.layers.InvertedResidual``). A width multiplier α
scales every layer's channels, rounded to a multiple of 8: about α² of the parameters and MACs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from zoo.layers.classifier import ClassifierHead
from zoo.layers.conv_norm_act import ConvNormAct
from zoo.layers.helpers import make_divisible
from zoo.layers.inverted_residual import DepthwiseSeparableConv, InvertedResidual
from zoo.layers.squeeze_excite import SqueezeExcite
from zoo.models.base import FeatureInfo, ImageClassifier, check_classifier_args
from zoo.registry import TORCHVISION_DOCS, Published, register_model
from zoo.weights import conv_norm_act_renames

__all__ = [
    "MOBILENET_V1_BLOCKS",
    "MOBILENET_V2_BLOCKS",
    "MOBILENET_V3_LARGE_BLOCKS",
    "MOBILENET_V3_SMALL_BLOCKS",
    "MobileNet",
    "MobileNetV1",
    "MobileNetV2",
    "MobileNetV3",
]

# The papers, for the model specs.
MOBILENET_V1_PAPER = "Howard et al. 2017, MobileNets, arXiv:1704.04861"
MOBILENET_V2_PAPER = "Sandler et al. 2018, MobileNetV2, arXiv:1801.04381"
MOBILENET_V3_PAPER = "Howard et al. 2019, Searching for MobileNetV3, arXiv:1905.02244"
# The paper counts convolutions and the classifier; batch norm adds 2-6 % in fvcore.
MOBILENET_PAPER = "Howard et al. 2017, MobileNets Table 6 (million mult-adds)"


class V1Row(NamedTuple):
    kernel: int
    out_channels: int
    stride: int


class V2Row(NamedTuple):
    kernel: int
    expand_ratio: int
    out_channels: int
    stride: int


class V3Row(NamedTuple):
    kernel: int
    expanded_channels: int
    out_channels: int
    se: bool
    activation: str
    stride: int


# MobileNetV1 (paper Table 1): one depthwise-separable block per row, after a 32-channel stem.
MOBILENET_V1_BLOCKS = [
    V1Row(3, 64, 1),  # stride 2
    V1Row(3, 128, 2),  # stride 4
    V1Row(3, 128, 1),
    V1Row(3, 256, 2),  # stride 8
    V1Row(3, 256, 1),
    V1Row(3, 512, 2),  # stride 16
    V1Row(3, 512, 1),
    V1Row(3, 512, 1),
    V1Row(3, 512, 1),
    V1Row(3, 512, 1),
    V1Row(3, 512, 1),
    V1Row(3, 1024, 2),  # stride 32
    V1Row(3, 1024, 1),
]

# MobileNetV2 (paper Table 2): one inverted residual per row, after a 32-channel stem; ReLU6, no SE.
MOBILENET_V2_BLOCKS = [
    V2Row(3, 1, 16, 1),  # stride 2
    V2Row(3, 6, 24, 2),  # stride 4
    V2Row(3, 6, 24, 1),
    V2Row(3, 6, 32, 2),  # stride 8
    V2Row(3, 6, 32, 1),
    V2Row(3, 6, 32, 1),
    V2Row(3, 6, 64, 2),  # stride 16
    V2Row(3, 6, 64, 1),
    V2Row(3, 6, 64, 1),
    V2Row(3, 6, 64, 1),
    V2Row(3, 6, 96, 1),
    V2Row(3, 6, 96, 1),
    V2Row(3, 6, 96, 1),
    V2Row(3, 6, 160, 2),  # stride 32
    V2Row(3, 6, 160, 1),
    V2Row(3, 6, 160, 1),
    V2Row(3, 6, 320, 1),
]

# MobileNetV3-Large (paper Table 1): one inverted residual per row, after a 16-channel stem.
MOBILENET_V3_LARGE_BLOCKS = [
    V3Row(3, 16, 16, False, "relu", 1),  # stride 2
    V3Row(3, 64, 24, False, "relu", 2),  # stride 4
    V3Row(3, 72, 24, False, "relu", 1),
    V3Row(5, 72, 40, True, "relu", 2),  # stride 8
    V3Row(5, 120, 40, True, "relu", 1),
    V3Row(5, 120, 40, True, "relu", 1),
    V3Row(3, 240, 80, False, "hard_swish", 2),  # stride 16
    V3Row(3, 200, 80, False, "hard_swish", 1),
    V3Row(3, 184, 80, False, "hard_swish", 1),
    V3Row(3, 184, 80, False, "hard_swish", 1),
    V3Row(3, 480, 112, True, "hard_swish", 1),
    V3Row(3, 672, 112, True, "hard_swish", 1),
    V3Row(5, 672, 160, True, "hard_swish", 2),  # stride 32
    V3Row(5, 960, 160, True, "hard_swish", 1),
    V3Row(5, 960, 160, True, "hard_swish", 1),
]

# MobileNetV3-Small (paper Table 2): no block runs at stride 2, the first one already halves the stem's map.
MOBILENET_V3_SMALL_BLOCKS = [
    V3Row(3, 16, 16, True, "relu", 2),  # stride 4
    V3Row(3, 72, 24, False, "relu", 2),  # stride 8
    V3Row(3, 88, 24, False, "relu", 1),
    V3Row(5, 96, 40, True, "hard_swish", 2),  # stride 16
    V3Row(5, 240, 40, True, "hard_swish", 1),
    V3Row(5, 240, 40, True, "hard_swish", 1),
    V3Row(5, 120, 48, True, "hard_swish", 1),
    V3Row(5, 144, 48, True, "hard_swish", 1),
    V3Row(5, 288, 96, True, "hard_swish", 2),  # stride 32
    V3Row(5, 576, 96, True, "hard_swish", 1),
    V3Row(5, 576, 96, True, "hard_swish", 1),
]


# torchvision's MobileNetV3 batch norm (TensorFlow's defaults).
MOBILENET_V3_NORM = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)


def _features_renames(blocks: Sequence[InvertedResidual], keys: Sequence[str]) -> list[tuple[str, str]]:
    """torchvision key → zoo key for MobileNetV2/V3, whose ``features`` Sequential holds the stem at
    index 0, the blocks at 1..n and the last conv at n + 1; ours are ``stem``, ``stage{k}.{j}``, ``last_conv``."""
    renames = conv_norm_act_renames("features.0", "stem")
    for index, (block, key) in enumerate(zip(blocks, keys, strict=True), start=1):
        renames += block.torchvision_renames(f"features.{index}", key)
    return renames + conv_norm_act_renames(f"features.{len(blocks) + 1}", "last_conv")


def _reduce_tail(blocks: Sequence[V3Row]) -> list[V3Row]:
    """``blocks`` with the last stage (from the last stride-2 row on) halved: every output width, and the
    expansion of every block after the stage's first (whose input is still the full-width previous stage)."""
    first = max(index for index, row in enumerate(blocks) if row.stride == 2)
    head, tail = list(blocks[:first]), blocks[first:]
    reduced = [tail[0]._replace(out_channels=tail[0].out_channels // 2)]
    reduced += [
        row._replace(expanded_channels=row.expanded_channels // 2, out_channels=row.out_channels // 2)
        for row in tail[1:]
    ]
    return head + reduced


def check_mobilenet_args(num_classes: object, in_chans: object, width_mult: object = 1.0) -> None:
    check_classifier_args(num_classes, in_chans)
    if not isinstance(width_mult, (int, float)) or width_mult <= 0:
        raise ValueError(f"width_mult must be a positive number, got {width_mult!r}")


class MobileNet(ImageClassifier):
    """The layout MobileNet V1–V3 and EfficientNet share (see the module docstring).

    Subclasses build ``stem``, the stages (with :meth:`_add_stages`), optionally ``last_conv``, then
    ``head``; every child before ``head`` is on the path of ``forward_features``, in the order it was added.
    """

    def _add_stages(
        self, blocks: Sequence[tuple[nn.Module, int, int]], output_stride: int = 32
    ) -> tuple[FeatureInfo, list[str]]:
        """Add ``blocks`` — ``(block, table stride, out_channels)`` in order, after the stride-2 stem — as
        top-level children ``stage{k}``, stage k holding the blocks the table puts at output stride 2^k.

        Returns one feature_info entry per stage (its last block; the reduction is capped at
        ``output_stride`` where dilation replaced the stride) and each block's key, e.g. ``"stage3.1"``.
        """
        stages: dict[str, list[nn.Module]] = {}
        info, keys, reduction = {}, [], 2
        for block, stride, channels in blocks:
            reduction *= stride
            name = f"stage{reduction.bit_length() - 1}"
            stages.setdefault(name, []).append(block)
            keys.append(f"{name}.{len(stages[name]) - 1}")
            info[name] = {"num_chs": channels, "reduction": min(reduction, output_stride), "module": name}
        for name, stage_blocks in stages.items():
            self.add_module(name, nn.Sequential(*stage_blocks))
        return FeatureInfo(info.values()), keys

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name, module in self.named_children():
            if name == "head":
                break
            x = module(x)
        return x


class MobileNetV1(MobileNet):
    """MobileNetV1 as timm's ``mobilenetv1_100``: ReLU6, no residuals, no 1×1 conv before the pool."""

    # timm key → zoo key: timm's stem is conv_stem + bn1, and its blocks.i are our stage{i+1}.
    reference_renames = [
        (r"^conv_stem\.", "stem.conv."),
        (r"^bn1\.", "stem.bn."),
        *[(rf"^blocks\.{index}\.", f"stage{index + 1}.") for index in range(5)],
        *DepthwiseSeparableConv.reference_renames,
    ]
    reference_head = {"classifier": "fc"}

    def __init__(
        self,
        blocks: Sequence[V1Row] = MOBILENET_V1_BLOCKS,
        *,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU6,
    ) -> None:
        super().__init__()
        check_mobilenet_args(num_classes, in_chans, width_mult)
        self.num_classes, self.in_chans = num_classes, in_chans
        in_channels = make_divisible(32 * width_mult, 8)
        self.stem = ConvNormAct(in_chans, in_channels, 3, stride=2, norm_layer=norm_layer, act_layer=act_layer)
        layers = []
        for row in blocks:
            out_channels = make_divisible(row.out_channels * width_mult, 8)
            block = DepthwiseSeparableConv(
                in_channels, out_channels, row.stride, kernel_size=row.kernel,
                norm_layer=norm_layer, act_layer=act_layer,
            )  # fmt: skip
            layers.append((block, row.stride, out_channels))
            in_channels = out_channels
        self.feature_info, _ = self._add_stages(layers)
        self.num_features = in_channels
        self.head = ClassifierHead(in_channels, num_classes, drop_rate=drop_rate)
        self._init_weights()


class MobileNetV2(MobileNet):
    """MobileNetV2 as torchvision's: ReLU6, linear bottlenecks, a 1×1 conv to 1280 channels before the pool."""

    reference_head = {"classifier.1": "fc"}  # torchvision's classifier is Sequential(dropout, linear)

    def __init__(
        self,
        blocks: Sequence[V2Row] = MOBILENET_V2_BLOCKS,
        *,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU6,
    ) -> None:
        super().__init__()
        check_mobilenet_args(num_classes, in_chans, width_mult)
        self.num_classes, self.in_chans = num_classes, in_chans
        in_channels = make_divisible(32 * width_mult, 8)
        self.stem = ConvNormAct(in_chans, in_channels, 3, stride=2, norm_layer=norm_layer, act_layer=act_layer)
        layers = []
        for row in blocks:
            out_channels = make_divisible(row.out_channels * width_mult, 8)
            block = InvertedResidual(
                in_channels, out_channels, row.stride, expanded_channels=round(in_channels * row.expand_ratio),
                kernel_size=row.kernel, act_layer=act_layer, norm_layer=norm_layer,
            )  # fmt: skip
            layers.append((block, row.stride, out_channels))
            in_channels = out_channels
        self.feature_info, keys = self._add_stages(layers)
        # The width before the pool never shrinks below 1280 (torchvision's rule).
        self.num_features = make_divisible(1280 * max(1.0, width_mult), 8)
        self.last_conv = ConvNormAct(in_channels, self.num_features, 1, norm_layer=norm_layer, act_layer=act_layer)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)
        self._init_weights()
        self.reference_renames = _features_renames([block for block, _, _ in layers], keys)


class MobileNetV3(MobileNet):
    """MobileNetV3 as torchvision's: ReLU / hard-swish, SE with a hard-sigmoid gate squeezing E to
    make_divisible(E/4, 8), BN with eps 1e-3 and momentum 0.01, a 1×1 conv to 6× the last block's width,
    and a two-layer head (linear → hard-swish → dropout → linear).

    ``num_features`` is the last conv's width (960 for Large, 576 for Small) and ``head_hidden_size`` the
    head's (1280, 1024): ``forward_head(x, pre_logits=True)`` returns the vector after the first linear
    layer and its hard-swish, as timm does.
    ``dilated=True`` trades the last stage's stride for dilation 2 (output stride 16), as torchvision's
    DeepLabV3 and LR-ASPP backbones do. ``reduced_tail=True`` halves the widths of the last stage (its
    blocks' outputs, the expansions after its first block) and of the head's hidden layer, the paper's
    "reduced" variant for detection (sec. 6.3, Table 6; torchvision's SSDlite backbone).
    """

    # torchvision's head is Sequential(linear, hard-swish, dropout, linear).
    reference_head = {"classifier.0": "pre_logits.0", "classifier.3": "fc"}

    def __init__(
        self,
        blocks: Sequence[V3Row],
        last_channel: int,
        *,
        width_mult: float = 1.0,
        dilated: bool = False,
        reduced_tail: bool = False,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        norm_layer: Callable[[int], nn.Module] = MOBILENET_V3_NORM,
    ) -> None:
        super().__init__()
        check_mobilenet_args(num_classes, in_chans, width_mult)
        for flag, value in (("dilated", dilated), ("reduced_tail", reduced_tail)):
            if not isinstance(value, bool):
                raise TypeError(f"{flag} must be a bool, got {type(value).__name__}")
        if reduced_tail:
            blocks, last_channel = _reduce_tail(blocks), last_channel // 2
        self.num_classes, self.in_chans = num_classes, in_chans

        def adjust(channels: int) -> int:
            return make_divisible(channels * width_mult, 8)

        output_stride = 16 if dilated else 32
        in_channels = stem_channels = adjust(16)
        self.stem = ConvNormAct(in_chans, in_channels, 3, stride=2, norm_layer=norm_layer, act_layer="hard_swish")
        layers, reduction, dilation = [], 2, 1
        for row in blocks:
            stride = row.stride
            if reduction * stride > output_stride:
                dilation, stride = dilation * stride, 1
            reduction *= stride
            expanded, out_channels = adjust(row.expanded_channels), adjust(row.out_channels)
            se_layer = None
            if row.se:
                rd_channels = make_divisible(expanded // 4, 8)
                se_layer = partial(SqueezeExcite, rd_channels=rd_channels, gate_layer="hard_sigmoid")
            block = InvertedResidual(
                in_channels, out_channels, stride, expanded_channels=expanded, kernel_size=row.kernel,
                dilation=dilation, se_layer=se_layer, act_layer=row.activation, norm_layer=norm_layer,
            )  # fmt: skip
            layers.append((block, row.stride, out_channels))
            in_channels = out_channels
        stage_info, keys = self._add_stages(layers, output_stride)
        last_conv_channels = 6 * in_channels
        self.last_conv = ConvNormAct(
            in_channels, last_conv_channels, 1, norm_layer=norm_layer, act_layer="hard_swish"
        )  # fmt: skip
        # As timm's features and torchvision's detection/segmentation backbones: the deepest map is the
        # last conv's; Small has no block at stride 2, so its stride-2 map is the stem's.
        self.feature_info = FeatureInfo(stage_info[:-1])
        if stage_info[0]["reduction"] != 2:
            self.feature_info.insert(0, {"num_chs": stem_channels, "reduction": 2, "module": "stem"})
        self.feature_info.append({"num_chs": last_conv_channels, "reduction": output_stride, "module": "last_conv"})

        self.num_features = last_conv_channels
        hidden = adjust(last_channel)
        self.head = ClassifierHead(
            last_conv_channels, num_classes, drop_rate=drop_rate, hidden_size=hidden,
            pre_logits=nn.Sequential(nn.Linear(last_conv_channels, hidden), nn.Hardswish(inplace=True)),
        )  # fmt: skip
        self._init_weights()
        self.reference_renames = _features_renames([block for block, _, _ in layers], keys)


# --- MobileNetV1: width multiplier α (timm's mobilenetv1_100 at α = 1) -------------------------
@register_model(
    reference="timm:mobilenetv1_100", paper=MOBILENET_V1_PAPER, published=Published(None, 0.569, MOBILENET_PAPER, 0.07)
)
def mobilenet_v1(**kwargs) -> MobileNetV1:
    return MobileNetV1(width_mult=1.0, **kwargs)


@register_model(
    reference="timm:mobilenetv1_100",
    reference_kwargs={"channel_multiplier": 0.75},
    paper=MOBILENET_V1_PAPER,
    published=Published(None, 0.325, MOBILENET_PAPER, 0.07),
)
def mobilenet_v1_075(**kwargs) -> MobileNetV1:
    return MobileNetV1(width_mult=0.75, **kwargs)


@register_model(
    reference="timm:mobilenetv1_100",
    reference_kwargs={"channel_multiplier": 0.5},
    paper=MOBILENET_V1_PAPER,
    published=Published(None, 0.149, MOBILENET_PAPER, 0.07),
)
def mobilenet_v1_050(**kwargs) -> MobileNetV1:
    return MobileNetV1(width_mult=0.5, **kwargs)


@register_model(
    reference="timm:mobilenetv1_100",
    reference_kwargs={"channel_multiplier": 0.25},
    paper=MOBILENET_V1_PAPER,
    published=Published(None, 0.041, MOBILENET_PAPER, 0.07),
)
def mobilenet_v1_025(**kwargs) -> MobileNetV1:
    return MobileNetV1(width_mult=0.25, **kwargs)


# --- MobileNetV2 / V3 (torchvision) -------------------------------------------------------------
@register_model(
    reference="torchvision",
    paper=MOBILENET_V2_PAPER,
    published=Published(3_504_872, 0.301, TORCHVISION_DOCS, 0.05, True),
)
def mobilenet_v2(**kwargs) -> MobileNetV2:
    return MobileNetV2(MOBILENET_V2_BLOCKS, **kwargs)


@register_model(
    reference="torchvision",
    paper=MOBILENET_V3_PAPER,
    published=Published(5_483_032, 0.217, TORCHVISION_DOCS, 0.05, True),
)
def mobilenet_v3_large(**kwargs) -> MobileNetV3:
    return MobileNetV3(MOBILENET_V3_LARGE_BLOCKS, last_channel=1280, **kwargs)


@register_model(
    reference="torchvision",
    paper=MOBILENET_V3_PAPER,
    published=Published(2_542_856, 0.057, TORCHVISION_DOCS, 0.05, True),
)
def mobilenet_v3_small(**kwargs) -> MobileNetV3:
    return MobileNetV3(MOBILENET_V3_SMALL_BLOCKS, last_channel=1024, **kwargs)
