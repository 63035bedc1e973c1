"""Residual blocks of ResNet (He et al., 2015, arXiv:1512.03385), ResNeXt (Xie et al., 2016,
arXiv:1611.05431), Wide ResNet (Zagoruyko & Komodakis, 2016) and SE-ResNet (Hu et al., 2018).

    y = act(F(x) + shortcut(x)),  shortcut = identity, or 1×1 conv (stride s) + BN when the shape changes.

Stride sits on the 3×3 convolution ("ResNet v1.5", as torchvision and timm do).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.layers.helpers import make_activation

__all__ = ["RESIDUAL_REFERENCE_RENAMES", "BasicBlock", "Bottleneck"]

# torchvision/timm key → zoo key (see zoo.load_reference_weights): each conv/bn pair of the
# reference is one ConvNormAct here, and the projection shortcut's Sequential is a ConvNormAct.
RESIDUAL_REFERENCE_RENAMES = [
    (r"(^|\.)conv(\d)\.(weight|bias)$", r"\1conv\2.conv.\3"),
    (r"(^|\.)bn(\d)\.", r"\1conv\2.bn."),
    (r"(^|\.)downsample\.0\.", r"\1downsample.conv."),
    (r"(^|\.)downsample\.1\.", r"\1downsample.bn."),
]


def _shortcut(in_channels: int, out_channels: int, stride: int, norm_layer) -> nn.Module | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return ConvNormAct(in_channels, out_channels, 1, stride=stride, norm_layer=norm_layer, act_layer=None)


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers and a shortcut; ``out_channels = planes`` (``expansion = 1``).

    With C_in → C = planes, stride s, H_out·W_out = P output positions and no projection:
        params = 9·C_in·C + 9·C·C + 4·C                     MACs = 9·P·C·(C_in + C)
    a projection shortcut adds C_in·C + 2·C params and P·C_in·C MACs; SE adds 2·C·R + R + C params.
    """

    expansion = 1
    reference_renames = RESIDUAL_REFERENCE_RENAMES

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        first_dilation: int | None = None,
        se_layer: Callable[[int], nn.Module] | None = None,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(
                f"BasicBlock supports only groups=1 and base_width=64, got groups={groups}, "
                f"base_width={base_width}; use Bottleneck for ResNeXt / Wide ResNet"
            )
        first_dilation = first_dilation or dilation
        out_channels = planes * self.expansion
        self.conv1 = ConvNormAct(
            in_channels, planes, 3, stride=stride, dilation=first_dilation,
            norm_layer=norm_layer, act_layer=act_layer,
        )  # fmt: skip
        self.conv2 = ConvNormAct(planes, out_channels, 3, dilation=dilation, norm_layer=norm_layer, act_layer=None)
        self.se = se_layer(out_channels) if se_layer is not None else None
        self.downsample = _shortcut(in_channels, out_channels, stride, norm_layer)
        self.act = make_activation(act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.conv2(self.conv1(x))
        if self.se is not None:
            x = self.se(x)
        return self.act(x + shortcut)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (grouped, strided, dilated) → 1×1 expand; ``out_channels = 4·planes``.

    The inner width is ``W = ⌊planes · base_width / 64⌋ · groups``: ResNet-50 (groups=1,
    base_width=64), ResNeXt-50 32×4d (groups=32, base_width=4), Wide ResNet-50-2 (base_width=128)
    are this one block with different arguments. With C_in, C_out = 4·planes, P output positions,
    no projection:
        params = C_in·W + 9·W²/groups + W·C_out + 2·(2·W + C_out)
        MACs   = P_in·C_in·W + P·(9·W²/groups + W·C_out)     (P_in = positions before the stride)
    a projection shortcut adds C_in·C_out + 2·C_out params and P·C_in·C_out MACs.
    """

    expansion = 4
    reference_renames = RESIDUAL_REFERENCE_RENAMES

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        first_dilation: int | None = None,
        se_layer: Callable[[int], nn.Module] | None = None,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        first_dilation = first_dilation or dilation
        width = int(planes * (base_width / 64.0)) * groups
        out_channels = planes * self.expansion
        self.conv1 = ConvNormAct(in_channels, width, 1, norm_layer=norm_layer, act_layer=act_layer)
        self.conv2 = ConvNormAct(
            width, width, 3, stride=stride, dilation=first_dilation, groups=groups,
            norm_layer=norm_layer, act_layer=act_layer,
        )  # fmt: skip
        self.conv3 = ConvNormAct(width, out_channels, 1, norm_layer=norm_layer, act_layer=None)
        self.se = se_layer(out_channels) if se_layer is not None else None
        self.downsample = _shortcut(in_channels, out_channels, stride, norm_layer)
        self.act = make_activation(act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.conv3(self.conv2(self.conv1(x)))
        if self.se is not None:
            x = self.se(x)
        return self.act(x + shortcut)
