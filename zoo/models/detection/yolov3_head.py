"""The YOLOv3 head (Redmon & Farhadi, 2018, "YOLOv3: An Incremental Improvement", arXiv:1804.02767, §2.3;
the layers of Darknet's ``yolov3.cfg``).

Coarse to fine. On the stride-32 map: five convs alternating 1×1 (W) and 3×3 (2W), a 3×3 conv (2W) and a 1×1
conv with bias giving A·(5 + C) channels (A anchors, C classes). The fifth conv's output goes through a 1×1 conv
(the next scale's W), a ×2 nearest upsampling and is concatenated with the stride-16 backbone map, where the same
head runs; likewise for stride 8. Per scale, with C_in channels entering it and O = A·(5 + C):
    params = C_in·W + 58·W² + 18·W + 2·W·O + O
Darknet-53 with W = 512, 256, 128, A = 3 and C = 80 gives yolov3.cfg's 61,949,149 parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.models.darknet import darknet_leaky_relu

__all__ = ["DetectionBlock", "YOLOv3Head"]


class DetectionBlock(nn.Module):
    """One scale of the head: five convs 1×1 (W) / 3×3 (2W) alternating, then a 3×3 conv (2W) and the 1×1
    prediction conv (with bias). ``forward`` returns ``(route, prediction)``: the fifth conv's output, which
    feeds the next finer scale, and the raw ``out_channels`` map.

    params = C_in·W + 58·W² + 18·W + 2·W·O + O  for ``in_channels = C_in``, ``width = W``, ``out_channels = O``.
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        out_channels: int,
        act_layer: str | Callable[..., nn.Module] = darknet_leaky_relu,
    ) -> None:
        super().__init__()
        layers, channels = [], in_channels
        for index in range(5):
            out = width if index % 2 == 0 else 2 * width
            layers.append(ConvNormAct(channels, out, 1 if index % 2 == 0 else 3, act_layer=act_layer))
            channels = out
        self.convs = nn.Sequential(*layers)
        self.conv = ConvNormAct(width, 2 * width, 3, act_layer=act_layer)
        self.pred = nn.Conv2d(2 * width, out_channels, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        route = self.convs(x)
        return route, self.pred(self.conv(route))


class YOLOv3Head(nn.Module):
    """The three-scale head. ``in_channels`` and ``widths`` are listed finest first (strides 8, 16, 32), as
    ``forward``'s feature maps are; it returns one raw ``[N, out_channels, H_l, W_l]`` map per level, finest first.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        widths: Sequence[int],
        out_channels: int,
        act_layer: str | Callable[..., nn.Module] = darknet_leaky_relu,
    ) -> None:
        super().__init__()
        if len(widths) != len(in_channels) or not all(isinstance(w, int) and w > 0 for w in widths):
            raise ValueError(
                f"head_widths: expected {len(in_channels)} positive ints (one per level, finest first), got {widths!r}"
            )
        last = len(in_channels) - 1
        # laterals[l] reduces scale l+1's route to scale l's width before the upsampling.
        self.laterals = nn.ModuleList(
            ConvNormAct(widths[level + 1], widths[level], 1, act_layer=act_layer) for level in range(last)
        )
        # A module rather than F.interpolate, so that layer-wise counters (zoo.analysis) see it.
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.blocks = nn.ModuleList(
            DetectionBlock(
                in_channels[level] + (widths[level] if level < last else 0), widths[level], out_channels, act_layer
            )
            for level in range(last + 1)
        )

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        outputs: list[Tensor] = [features[0]] * len(features)
        route = None
        for level in reversed(range(len(features))):  # coarse to fine: each scale takes the coarser one's route
            x = features[level]
            if route is not None:
                upsampled = self.upsample(self.laterals[level](route))
                if upsampled.shape[-2:] != x.shape[-2:]:
                    raise ValueError(
                        f"feature map {level} (finest first) is {tuple(x.shape[-2:])}, not twice the next coarser "
                        f"one {tuple(route.shape[-2:])}: the head needs a backbone whose stages halve the size exactly"
                    )
                x = torch.cat([upsampled, x], dim=1)  # Darknet's order: route -1 (upsampled), then the backbone
            route, outputs[level] = self.blocks[level](x)
        return outputs
