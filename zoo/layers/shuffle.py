"""Channel shuffle (Zhang et al., 2017, arXiv:1707.01083) and the ShuffleNet V2 unit (Ma et al., 2018,
arXiv:1807.11164).

Channel shuffle with g groups of k channels: view the channels as a g×k matrix, transpose it, read it back,
so that output channel j·g + i is input channel i·k + j and the next grouped operation mixes every group.

ShuffleNet V2 unit with C_out = 2·B output channels:
    stride 1:  x = [x₁, x₂] (channel split)    y = shuffle([x₁, branch2(x₂)], 2)
    stride s:  y = shuffle([branch1(x), branch2(x)], 2)
    branch1 = 3×3/s depthwise-BN → 1×1-BN-ReLU;  branch2 = 1×1-BN-ReLU → 3×3/s depthwise-BN → 1×1-BN-ReLU
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct

__all__ = ["SHUFFLE_REFERENCE_RENAMES", "ShuffleV2Block", "channel_shuffle"]

# torchvision InvertedResidual key → zoo key (see zoo.load_reference_weights). torchvision keeps each branch
# as one flat Sequential (conv, BN and ReLU by index; the ReLUs hold no weights); here each conv/BN pair is
# one named ConvNormAct.
_BRANCH_LAYERS = {
    "branch1": {0: "depthwise.conv", 1: "depthwise.bn", 2: "pointwise.conv", 3: "pointwise.bn"},
    "branch2": {
        0: "pointwise1.conv", 1: "pointwise1.bn",
        3: "depthwise.conv", 4: "depthwise.bn",
        5: "pointwise2.conv", 6: "pointwise2.bn",
    },
}  # fmt: skip
SHUFFLE_REFERENCE_RENAMES = [
    (rf"(^|\.){branch}\.{index}\.", rf"\1{branch}.{path}.")
    for branch, layers in _BRANCH_LAYERS.items()
    for index, path in layers.items()
]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the ``groups`` channel groups of ``x`` (N, C, ...): output channel j·groups + i is input
    channel i·(C / groups) + j. Holds no weights and costs no multiply-adds."""
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if x.ndim < 2:
        raise ValueError(f"channel_shuffle expects a tensor of shape (N, C, ...), got shape {tuple(x.shape)}")
    channels = x.shape[1]
    if channels % groups:
        raise ValueError(
            f"channel_shuffle needs channels divisible by groups, got {channels} channels in {groups} groups"
        )
    return x.unflatten(1, (groups, channels // groups)).transpose(1, 2).flatten(1, 2)


class ShuffleV2Block(nn.Module):
    """The ShuffleNet V2 unit (torchvision's ``InvertedResidual``); see the module docstring for the layout.

    With C_in input channels, B = C_out / 2, an H×W input and P = H_out·W_out output positions:
        stride 1 (C_in = C_out):  params = 2·B² + 15·B
                                  MACs   = P·(2·B² + 9·B)
        stride s > 1:             params = 2·C_in·B + 11·C_in + B² + 17·B
                                  MACs   = H·W·C_in·B + P·(C_in·B + 9·C_in + B² + 9·B)
    (convolutions only; in eval each batch-norm adds 2 MACs per output element, as zoo.analysis counts them).
    """

    reference_renames = SHUFFLE_REFERENCE_RENAMES

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive int, got {stride!r}")
        if out_channels % 2:
            raise ValueError(f"out_channels must be even (two branches of out_channels / 2), got {out_channels}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError(
                "a stride-1 unit splits its input in two and passes one half through, so in_channels must equal "
                f"out_channels; got in_channels={in_channels}, out_channels={out_channels}"
            )
        self.stride = stride
        branch_channels = out_channels // 2
        norm_act = dict(norm_layer=norm_layer, act_layer=act_layer)
        norm_only = dict(norm_layer=norm_layer, act_layer=None)
        if stride == 1:
            self.branch1 = None  # the identity half of the channel split
        else:
            self.branch1 = nn.Sequential(
                OrderedDict(
                    depthwise=ConvNormAct(in_channels, in_channels, 3, stride, groups=in_channels, **norm_only),
                    pointwise=ConvNormAct(in_channels, branch_channels, 1, **norm_act),
                )
            )
        self.branch2 = nn.Sequential(
            OrderedDict(
                pointwise1=ConvNormAct(in_channels if stride > 1 else branch_channels, branch_channels, 1, **norm_act),
                depthwise=ConvNormAct(branch_channels, branch_channels, 3, stride, groups=branch_channels, **norm_only),
                pointwise2=ConvNormAct(branch_channels, branch_channels, 1, **norm_act),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch1 is None:
            kept, x = x.chunk(2, dim=1)
        else:
            kept = self.branch1(x)
        return channel_shuffle(torch.cat((kept, self.branch2(x)), dim=1), 2)
