"""Convolution → normalisation → activation, the unit every CNN in the zoo is built from.

For a k×k convolution from C_in to C_out channels in `groups` groups on an H_out×W_out output:
    params = C_out · k² · C_in / groups  (+ C_out with bias)  + 2 · C_out  (batch-norm γ, β)
    MACs   = H_out · W_out · C_out · k² · C_in / groups
with H_out = ⌊(H + 2·padding − dilation·(k − 1) − 1) / stride⌋ + 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from zoo.layers.helpers import make_activation

__all__ = ["ConvNormAct"]


class ConvNormAct(nn.Module):
    """``conv`` (no bias) → ``bn`` → ``act``; ``act_layer=None`` gives conv → norm only.

    Padding defaults to ``dilation · (kernel_size − 1) // 2`` ("same" for odd kernels at stride 1).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
        act_layer: str | Callable[..., nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                f"divisible by groups ({groups})"
            )
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        self.bn = norm_layer(out_channels) if norm_layer is not None else nn.Identity()
        self.act = make_activation(act_layer)
        # Skipping the Identity calls keeps small networks as fast as their references.
        self._has_norm = norm_layer is not None
        self._has_act = not isinstance(self.act, nn.Identity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self._has_norm:
            x = self.bn(x)
        return self.act(x) if self._has_act else x
