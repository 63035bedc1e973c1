"""Depthwise-separable convolution and the residual block of Xception (Chollet, 2016, arXiv:1610.02357), as
timm's ``legacy_xception`` defines them.

A separable k×k convolution from C_in to C_out channels is a depthwise k×k convolution (one filter per input
channel) followed by a pointwise 1×1 convolution, with nothing between them:

    params = k²·C_in + C_in·C_out          MACs = P·(k²·C_in + C_in·C_out)

on P output positions: 1/C_out + 1/k² of a standard convolution's cost.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct

__all__ = ["SEPARABLE_CONV_REFERENCE_RENAMES", "XCEPTION_BLOCK_REFERENCE_RENAMES", "SeparableConv2d", "XceptionBlock"]

# timm key → zoo key (see zoo.load_reference_weights): timm calls the depthwise convolution `conv1`.
SEPARABLE_CONV_REFERENCE_RENAMES = [(r"(^|\.)conv1\.weight$", r"\1depthwise.weight")]
# and the block's projection shortcut `skip` + `skipbn`, one ConvNormAct here.
XCEPTION_BLOCK_REFERENCE_RENAMES = [
    *SEPARABLE_CONV_REFERENCE_RENAMES,
    (r"(^|\.)skip\.", r"\1shortcut.conv."),
    (r"(^|\.)skipbn\.", r"\1shortcut.bn."),
]


class SeparableConv2d(nn.Module):
    """``depthwise`` k×k convolution (groups = C_in) → ``pointwise`` 1×1 convolution, both without bias."""

    reference_renames = SEPARABLE_CONV_REFERENCE_RENAMES

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, kernel_size, stride, padding, dilation, groups=in_channels, bias=False
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """``reps`` × (ReLU → separable 3×3 → BN), then a 3×3 max-pool (padding 1) when ``stride > 1``, plus a
    shortcut: identity, or 1×1 conv (stride s) + BN when the shape changes. No activation after the sum.

    The width grows at the first separable conv (``grow_first=True``) or at the last. ``start_with_relu=False``
    drops the leading ReLU (the first block reads the stem's activated output). With the separable convs' widths
    (a_r → b_r), P_in positions before the pool and P after it:
        params = Σ_r (9·a_r + a_r·b_r + 2·b_r)  (+ C_in·C_out + 2·C_out with a projection)
        MACs   = P_in·Σ_r (9·a_r + a_r·b_r)     (+ P·C_in·C_out with a projection; + BN)
    """

    reference_renames = XCEPTION_BLOCK_REFERENCE_RENAMES

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        reps: int,
        stride: int = 1,
        *,
        start_with_relu: bool = True,
        grow_first: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(reps, int) or reps < 1:
            raise ValueError(f"reps must be a positive int (separable convs in the block), got {reps!r}")
        if grow_first:
            widths = [(in_channels, out_channels)] + [(out_channels, out_channels)] * (reps - 1)
        else:
            widths = [(in_channels, in_channels)] * (reps - 1) + [(in_channels, out_channels)]
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(widths):
            if index > 0:
                layers.append(nn.ReLU(inplace=True))
            elif start_with_relu:  # not in place: the shortcut still needs the block's input
                layers.append(nn.ReLU(inplace=False))
            layers += [SeparableConv2d(width_in, width_out, 3, padding=1), nn.BatchNorm2d(width_out)]
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride=stride, padding=1))
        self.rep = nn.Sequential(*layers)
        self.shortcut = None
        if in_channels != out_channels or stride != 1:
            self.shortcut = ConvNormAct(in_channels, out_channels, 1, stride=stride, act_layer=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.rep(x) + shortcut
