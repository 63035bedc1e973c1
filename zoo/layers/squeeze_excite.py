"""Squeeze-and-Excitation (Hu et al., 2018, arXiv:1709.01507).

    s = gate(fc2(act(fc1(mean_{h,w} x))))      y = x · s
fc1 and fc2 are 1×1 convolutions with bias, C → R → C, with R = make_divisible(C · rd_ratio, rd_divisor).
    params = 2·C·R + R + C          MACs = 2·C·R  (+ H·W·C for the pooling sum and the rescale each)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from zoo.layers.helpers import make_activation, make_divisible

__all__ = ["SqueezeExcite"]


class SqueezeExcite(nn.Module):
    """Channel attention: global pool → 1×1 reduce → act → 1×1 expand → gate → rescale.

    ``rd_channels`` overrides the reduced width; otherwise it is
    ``make_divisible(channels · rd_ratio, rd_divisor, round_limit=0)`` (timm's SE-ResNet rule:
    64 channels at ratio 1/16 → 8).
    """

    def __init__(
        self,
        channels: int,
        rd_ratio: float = 1 / 16,
        rd_channels: int | None = None,
        rd_divisor: int = 8,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU,
        gate_layer: str | Callable[..., nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        if rd_channels is None:
            rd_channels = make_divisible(channels * rd_ratio, rd_divisor, round_limit=0.0)
        self.fc1 = nn.Conv2d(channels, rd_channels, kernel_size=1, bias=True)
        self.act = make_activation(act_layer)
        self.fc2 = nn.Conv2d(rd_channels, channels, kernel_size=1, bias=True)
        self.gate = make_activation(gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(dim=(2, 3), keepdim=True)
        scale = self.gate(self.fc2(self.act(self.fc1(scale))))
        return x * scale
