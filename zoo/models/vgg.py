"""VGG (Simonyan & Zisserman, 2014, arXiv:1409.1556) and AlexNet (Krizhevsky, 2014, "One weird trick for
parallelizing convolutional neural networks", arXiv:1404.5997), as torchvision defines them.

    stage1..stageN: convolutions with bias, each (BN →) ReLU, closed by a stride-2 max-pool
    head: adaptive average pool to S×S → fc1-ReLU → fc2-ReLU (4096 wide) → fc, with dropout 0.5
VGG: 3×3 convolutions in five stages (strides 2..32), 2×2/2 pools, S = 7, dropout after each hidden ReLU.
AlexNet: 11×11/4, 5×5 then three 3×3 convolutions in three stages (strides 8, 16, 32), overlapping 3×3/2 pools,
S = 6, dropout before fc1 and fc2. The `_bn` VGGs add a batch-norm after every convolution (bias kept).

With a k×k convolution from C_in to C on P output positions, hidden width D = 4096 and K classes:
    conv:  params = k²·C_in·C + C (+ 2·C with BN)       MACs = P·k²·C_in·C (+ 2·P·C with BN, eval)
    head:  params = C_last·S²·D + D + D² + D + D·K + K   MACs = C_last·S²·D + D² + D·K (+ the pooled input)

`forward_head(x, pre_logits=True)` returns the input of the last linear layer, the D = 4096-vector
(``head_hidden_size``, as timm names it); ``num_features`` is the width of ``forward_features``, 512 for VGG
and 256 for AlexNet.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import nn

from zoo.layers.classifier import ClassifierHead
from zoo.layers.conv_norm_act import ConvNormAct
from zoo.layers.helpers import make_activation
from zoo.models.base import FeatureInfo, ImageClassifier, check_classifier_args
from zoo.registry import TORCHVISION_DOCS, Published, register_model

__all__ = ["ALEXNET_STAGES", "VGG_STAGES", "AlexNet", "VGG", "vgg_stage", "vgg_stages", "vgg_torchvision_renames"]

# The papers, for the model specs.
VGG_PAPER = "Simonyan & Zisserman 2014, Very Deep Convolutional Networks, arXiv:1409.1556"
ALEXNET_PAPER = "Krizhevsky 2014, One weird trick for parallelizing CNNs, arXiv:1404.5997"

# One row per convolution: (out_channels, kernel_size, stride, padding).
ConvRow = tuple[int, int, int, int]

# AlexNet's widths are the single-GPU 64-192-384-256-256 of "one weird trick"; each stage ends in a 3×3/2 pool.
ALEXNET_STAGES: list[list[ConvRow]] = [
    [(64, 11, 4, 2)],  # stage1: output stride 8
    [(192, 5, 1, 2)],  # stage2: output stride 16
    [(384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1)],  # stage3: output stride 32
]

# VGG: (width, number of 3×3 convolutions per stage in VGG-11, -13, -16, -19, the paper's configurations
# A, B, D, E); each stage ends in a 2×2/2 pool.
VGG_STAGES: list[tuple[int, dict[int, int]]] = [
    (64, {11: 1, 13: 2, 16: 2, 19: 2}),  # stage1: output stride 2
    (128, {11: 1, 13: 2, 16: 2, 19: 2}),  # stage2: output stride 4
    (256, {11: 2, 13: 2, 16: 3, 19: 4}),  # stage3: output stride 8
    (512, {11: 2, 13: 2, 16: 3, 19: 4}),  # stage4: output stride 16
    (512, {11: 2, 13: 2, 16: 3, 19: 4}),  # stage5: output stride 32
]


def vgg_stages(depth: int) -> list[list[ConvRow]]:
    """The convolution rows of VGG-``depth`` (11, 13, 16 or 19) in the form VGG takes."""
    if depth not in VGG_STAGES[0][1]:
        raise ValueError(f"VGG depth must be one of {sorted(VGG_STAGES[0][1])}, got {depth!r}")
    return [[(width, 3, 1, 1)] * convs[depth] for width, convs in VGG_STAGES]


def vgg_stage(
    in_channels: int,
    rows: Sequence[ConvRow],
    norm_layer: Callable[[int], nn.Module] | None = None,
    act_layer: str | Callable[..., nn.Module] = nn.ReLU,
    pool_kernel: int = 2,
) -> nn.Sequential:
    """One stage: a ConvNormAct (bias kept) per row, closed by a ``pool_kernel``-sized max-pool of stride 2."""
    layers: list[nn.Module] = []
    for out_channels, kernel_size, stride, padding in rows:
        layers.append(
            ConvNormAct(
                in_channels, out_channels, kernel_size, stride, padding, bias=True,
                norm_layer=norm_layer, act_layer=act_layer,
            )
        )  # fmt: skip
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=pool_kernel, stride=2))
    return nn.Sequential(*layers)


def vgg_torchvision_renames(stages: Sequence[Sequence[ConvRow]], with_norm: bool) -> list[tuple[str, str]]:
    """torchvision key → zoo key. torchvision numbers every layer of one flat ``features`` Sequential
    (conv, [BN,] ReLU per convolution, a pool per stage); the index of each weight-holding layer follows
    from the stage table."""
    renames = []
    index = 0
    for stage_index, stage in enumerate(stages, start=1):
        for conv_index in range(len(stage)):
            renames.append((rf"^features\.{index}\.", f"stage{stage_index}.{conv_index}.conv."))
            if with_norm:
                renames.append((rf"^features\.{index + 1}\.", f"stage{stage_index}.{conv_index}.bn."))
            index += 3 if with_norm else 2
        index += 1  # the stage's max-pool
    return renames


def _torchvision_head(dropout_before_fc: Sequence[bool]) -> dict[str, str]:
    """torchvision's ``classifier`` Sequential (optional dropout, linear and ReLU per linear layer) → our head."""
    head, index = {}, 0
    for name, dropout in zip(("pre_logits.fc1", "pre_logits.fc2", "fc"), dropout_before_fc, strict=True):
        index += dropout
        head[f"classifier.{index}"] = name
        index += 2  # the linear layer and its ReLU
    return head


class VGG(ImageClassifier):
    """Plain convolutional stages, each closed by a max-pool, and a three-layer MLP classifier.

    ``stages`` holds one list of :data:`ConvRow` per stage; ``stage{i}`` is a top-level
    ``nn.Sequential`` of its ConvNormActs and the closing pool, and ``feature_info`` lists every stage at
    the reduction after its pool (VGG: 2, 4, 8, 16, 32). A map before a pool (SSD's conv4_3) is
    ``model.stage4[:-1](x)``. ``dropout_before_fc`` says which of fc1, fc2, fc has a dropout in front.
    ``num_features`` is the last stage's width (512), ``head_hidden_size`` the MLP's (4096).
    """

    hidden_features = 4096

    def __init__(
        self,
        stages: Sequence[Sequence[ConvRow]],
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.5,
        norm_layer: Callable[[int], nn.Module] | None = None,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU,
        pool_kernel: int = 2,
        pooled_size: int = 7,
        dropout_before_fc: Sequence[bool] = (False, True, True),
        init_weights: bool = True,
    ) -> None:
        super().__init__()
        check_classifier_args(num_classes, in_chans)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.reference_renames = vgg_torchvision_renames(stages, norm_layer is not None)
        self.reference_head = _torchvision_head(dropout_before_fc)

        self.feature_info = FeatureInfo()
        in_channels, reduction = in_chans, 1
        for stage_index, stage in enumerate(stages, start=1):
            name = f"stage{stage_index}"
            self.add_module(name, vgg_stage(in_channels, stage, norm_layer, act_layer, pool_kernel))
            in_channels = stage[-1][0]
            reduction *= 2 * math.prod(row[2] for row in stage)
            self.feature_info.append({"num_chs": in_channels, "reduction": reduction, "module": name})

        hidden = self.hidden_features
        self.num_features = in_channels
        drop_fc1, drop_fc2, drop_fc = dropout_before_fc
        mlp: list[tuple[str, nn.Module]] = [
            ("drop1", nn.Dropout(drop_rate) if drop_fc1 else nn.Identity()),
            ("fc1", nn.Linear(in_channels * pooled_size * pooled_size, hidden)),
            ("act1", make_activation(act_layer)),
            ("drop2", nn.Dropout(drop_rate) if drop_fc2 else nn.Identity()),
            ("fc2", nn.Linear(hidden, hidden)),
            ("act2", make_activation(act_layer)),
        ]
        self.head = ClassifierHead(
            in_channels, num_classes, pool_size=pooled_size, drop_rate=drop_rate if drop_fc else 0.0,
            pre_logits=nn.Sequential(OrderedDict(mlp)), hidden_size=hidden,
        )  # fmt: skip
        if init_weights:
            self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's VGG initialisation (AlexNet keeps PyTorch's defaults)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for info in self.feature_info:
            x = getattr(self, info["module"])(x)
        return x


class AlexNet(VGG):
    """AlexNet: the VGG pattern with :data:`ALEXNET_STAGES`, 3×3/2 pools, a 6×6 pooled map and dropout in
    front of fc1 and fc2. Reductions 8, 16, 32: the 11×11/4 stem conv then one stride-2 pool per stage."""

    def __init__(self, **kwargs) -> None:
        super().__init__(
            ALEXNET_STAGES, pool_kernel=3, pooled_size=6, dropout_before_fc=(True, True, False),
            init_weights=False, **kwargs,
        )  # fmt: skip


# The smallest side leaving one position after the last pool: 63 → 15 → 7 → 3 → 1.
@register_model(
    min_input_size=63,
    reference="torchvision",
    paper=ALEXNET_PAPER,
    published=Published(61_100_840, 0.714, TORCHVISION_DOCS, 0.05, True),
)
def alexnet(**kwargs) -> AlexNet:
    return AlexNet(**kwargs)


# --- VGG-11/13/16/19, without and with batch-norm ---------------------------------------------------------
@register_model(
    reference="torchvision", paper=VGG_PAPER, published=Published(132_863_336, 7.609, TORCHVISION_DOCS, 0.05, True)
)
def vgg11(**kwargs) -> VGG:
    return VGG(vgg_stages(11), **kwargs)


@register_model(
    reference="torchvision", paper=VGG_PAPER, published=Published(133_047_848, 11.308, TORCHVISION_DOCS, 0.05, True)
)
def vgg13(**kwargs) -> VGG:
    return VGG(vgg_stages(13), **kwargs)


@register_model(
    reference="torchvision", paper=VGG_PAPER, published=Published(138_357_544, 15.47, TORCHVISION_DOCS, 0.05, True)
)
def vgg16(**kwargs) -> VGG:
    return VGG(vgg_stages(16), **kwargs)


@register_model(
    reference="torchvision", paper=VGG_PAPER, published=Published(143_667_240, 19.632, TORCHVISION_DOCS, 0.05, True)
)
def vgg19(**kwargs) -> VGG:
    return VGG(vgg_stages(19), **kwargs)


@register_model(
    reference="torchvision", paper=VGG_PAPER, published=Published(132_868_840, 7.609, TORCHVISION_DOCS, 0.05, True)
)
def vgg11_bn(**kwargs) -> VGG:
    return VGG(vgg_stages(11), norm_layer=nn.BatchNorm2d, **kwargs)


@register_model(
    reference="torchvision", paper=VGG_PAPER, published=Published(133_053_736, 11.308, TORCHVISION_DOCS, 0.05, True)
)
def vgg13_bn(**kwargs) -> VGG:
    return VGG(vgg_stages(13), norm_layer=nn.BatchNorm2d, **kwargs)


@register_model(
    reference="torchvision", paper=VGG_PAPER, published=Published(138_365_992, 15.47, TORCHVISION_DOCS, 0.05, True)
)
def vgg16_bn(**kwargs) -> VGG:
    return VGG(vgg_stages(16), norm_layer=nn.BatchNorm2d, **kwargs)


@register_model(
    reference="torchvision", paper=VGG_PAPER, published=Published(143_678_248, 19.632, TORCHVISION_DOCS, 0.05, True)
)
def vgg19_bn(**kwargs) -> VGG:
    return VGG(vgg_stages(19), norm_layer=nn.BatchNorm2d, **kwargs)
