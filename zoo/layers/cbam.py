"""CBAM, the Convolutional Block Attention Module (Woo et al., 2018, arXiv:1807.06521).

Channel attention, then spatial attention, each a gate multiplied into the map:
    M_c = σ(MLP(AvgPool_{h,w}(x)) + MLP(MaxPool_{h,w}(x)))          x' = M_c ⊙ x        (one weight per channel)
    M_s = σ(BN(conv_{7×7}([mean_c(x'); max_c(x')])))                 y  = M_s ⊙ x'       (one weight per pixel)
The MLP is shared by both descriptors: 1×1 convolutions C → R → C without bias, ReLU between, R = C·rd_ratio.
Against squeeze-and-excitation (:class:`~zoo.layers.SqueezeExcite`, average pooling only and no spatial gate),
the max-pooled descriptor keeps the most salient response of each channel and the spatial gate says where.

    params = 2·C·R (MLP) + 2·k² + 2 (the 2 → 1 conv and its batch norm)
    MACs   = 2·2·C·R (the MLP on two descriptors) + H·W·2·k² (the spatial conv)
With C = 256, R = 16, k = 7: 8,192 + 98 + 2 = 8,292 parameters, as timm's ``CbamModule``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.layers.helpers import make_activation, make_divisible

__all__ = ["CBAM", "ChannelAttention", "SpatialAttention"]


class ChannelAttention(nn.Module):
    """M_c: the shared MLP over the average- and max-pooled channel descriptors, summed and gated."""

    def __init__(
        self,
        channels: int,
        rd_channels: int,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU,
        gate_layer: str | Callable[..., nn.Module] = nn.Sigmoid,
        mlp_bias: bool = False,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, rd_channels, kernel_size=1, bias=mlp_bias)
        self.act = make_activation(act_layer)
        self.fc2 = nn.Conv2d(rd_channels, channels, kernel_size=1, bias=mlp_bias)
        self.gate = make_activation(gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        average = self.fc2(self.act(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        maximum = self.fc2(self.act(self.fc1(x.amax(dim=(2, 3), keepdim=True))))
        return x * self.gate(average + maximum)


class SpatialAttention(nn.Module):
    """M_s: a k×k conv (and batch norm) over the per-pixel channel mean and maximum, gated."""

    def __init__(self, kernel_size: int = 7, gate_layer: str | Callable[..., nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int (the map keeps its size), got {kernel_size!r}")
        self.conv = ConvNormAct(2, 1, kernel_size, act_layer=None)
        self.gate = make_activation(gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        descriptor = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * self.gate(self.conv(descriptor))


class CBAM(nn.Module):
    """Channel attention followed by spatial attention (see the module docstring); keeps the input's shape.

    ``rd_channels`` overrides the MLP's width, else ``make_divisible(channels · rd_ratio, rd_divisor)``.
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 16,
        rd_channels: int | None = None,
        rd_divisor: int = 1,
        spatial_kernel_size: int = 7,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU,
        gate_layer: str | Callable[..., nn.Module] = nn.Sigmoid,
        mlp_bias: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        if rd_channels is None:
            rd_channels = make_divisible(channels * rd_ratio, rd_divisor, round_limit=0.0)
        self.channels = channels
        self.channel = ChannelAttention(channels, rd_channels, act_layer, gate_layer, mlp_bias)
        self.spatial = SpatialAttention(spatial_kernel_size, gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != self.channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"CBAM expects an (N, {self.channels}, H, W) map, got {shape}")
        return self.spatial(self.channel(x))
