"""Feature Pyramid Network (Lin et al., 2017, arXiv:1612.03144), as torchvision's ``ops.FeaturePyramidNetwork``.

For backbone maps C_1 … C_L (shallowest first, each at least as coarse as the one before):

    M_L = lateral_L(C_L)                                   lateral_i: 1×1 conv, C_i → D channels
    M_i = lateral_i(C_i) + upsample_nearest(M_{i+1}, size of C_i)       i = L−1 … 1
    P_i = output_i(M_i)                                    output_i: 3×3 conv, D → D channels

The top-down pathway carries the semantics of the deepest map down to every resolution; the 3×3
convolution smooths the aliasing of the nearest-neighbour upsampling. Upsampling to the lateral's
own size (not a fixed ×2) makes odd input sizes work. Extra blocks add coarser levels:
``LastLevelMaxPool`` (Faster R-CNN: P6 = P5 subsampled by 2, named ``"pool"``) and ``LastLevelP6P7``
(RetinaNet: P6 = 3×3/2 conv of P5 or C5, P7 = 3×3/2 conv of ReLU(P6)).

Maps are passed as ordered dicts ``{name: (N, C, H, W)}`` and returned highest resolution first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct

__all__ = ["FPN_REFERENCE_RENAMES", "ExtraFPNBlock", "FeaturePyramidNetwork", "LastLevelMaxPool", "LastLevelP6P7"]

# torchvision key → zoo key: its Conv2dNormActivation is a Sequential (0: conv, 1: norm); ours is a ConvNormAct.
FPN_REFERENCE_RENAMES = [
    (r"(^|\.)(inner_blocks|layer_blocks)\.(\d+)\.0\.", r"\1\2.\3.conv."),
    (r"(^|\.)(inner_blocks|layer_blocks)\.(\d+)\.1\.", r"\1\2.\3.bn."),
]


def _init_conv(conv: nn.Conv2d) -> None:
    # torchvision's FPN init (Detectron's "caffe2_xavier"): uniform with bound √(3 / fan_in), zero bias.
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _check_channels(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


class ExtraFPNBlock(nn.Module):
    """Base class of the blocks that add levels after the FPN's last one.

    ``forward(results, features, names)`` gets the FPN outputs P_1 … P_L, the backbone maps C_1 … C_L
    and the level names, and returns the extended outputs and names.
    """

    def forward(
        self, results: list[torch.Tensor], features: list[torch.Tensor], names: list[str]
    ) -> tuple[list[torch.Tensor], list[str]]:
        raise NotImplementedError


class LastLevelMaxPool(ExtraFPNBlock):
    """P6 = P5[..., ::2, ::2] (a 1×1 max-pool with stride 2, i.e. subsampling), named ``"pool"``; no parameters."""

    def forward(
        self, results: list[torch.Tensor], features: list[torch.Tensor], names: list[str]
    ) -> tuple[list[torch.Tensor], list[str]]:
        pooled = F.max_pool2d(results[-1], kernel_size=1, stride=2, padding=0)
        return [*results, pooled], [*names, "pool"]


class LastLevelP6P7(ExtraFPNBlock):
    """RetinaNet's P6 = conv3×3/2(P5 or C5) and P7 = conv3×3/2(ReLU(P6)), named ``"p6"``, ``"p7"``.

    ``use_P5`` (default: ``in_channels == out_channels``, torchvision's rule) takes P5 as the source,
    otherwise C5, the backbone's last map, whose channel count must then be ``in_channels``.
    params = 9·D·C_in + D + 9·D² + D.
    """

    def __init__(self, in_channels: int, out_channels: int, use_P5: bool | None = None) -> None:
        super().__init__()
        _check_channels("in_channels", in_channels)
        _check_channels("out_channels", out_channels)
        if use_P5 is None:
            use_P5 = in_channels == out_channels
        if use_P5 and in_channels != out_channels:
            raise ValueError(
                f"use_P5=True feeds P5 ({out_channels} channels) to P6, so in_channels must equal "
                f"out_channels ({out_channels}), got {in_channels}"
            )
        self.use_P5 = use_P5
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, stride=2, padding=1)
        _init_conv(self.p6)
        _init_conv(self.p7)

    def forward(
        self, results: list[torch.Tensor], features: list[torch.Tensor], names: list[str]
    ) -> tuple[list[torch.Tensor], list[str]]:
        source = results[-1] if self.use_P5 else features[-1]
        if source.shape[1] != self.p6.in_channels:
            raise ValueError(
                f"LastLevelP6P7 was built for {self.p6.in_channels} input channels but its source "
                f"({'P5' if self.use_P5 else 'C5, the last backbone map'}) has {source.shape[1]}"
            )
        p6 = self.p6(source)
        p7 = self.p7(F.relu(p6))
        return [*results, p6, p7], [*names, "p6", "p7"]


class FeaturePyramidNetwork(nn.Module):
    """Top-down pathway with lateral connections over named maps (see the module docstring).

    ``inner_blocks[i]`` is the 1×1 lateral conv of level i, ``layer_blocks[i]`` its 3×3 output conv;
    both carry a bias unless ``norm_layer`` is given (then conv → norm, no activation). With D output
    channels, input channels C_i and P_i positions at level i, without norm:
        params = Σ_i (C_i·D + D) + L·(9·D² + D)            MACs = Σ_i P_i·(C_i·D + 9·D²)
    """

    reference_renames = FPN_REFERENCE_RENAMES

    def __init__(
        self,
        in_channels_list: Sequence[int],
        out_channels: int,
        extra_blocks: ExtraFPNBlock | None = None,
        norm_layer: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(in_channels_list, (str, bytes, int)) or len(in_channels_list) == 0:
            raise ValueError(f"in_channels_list must be a non-empty sequence of ints, got {in_channels_list!r}")
        for channels in in_channels_list:
            _check_channels("every entry of in_channels_list", channels)
        _check_channels("out_channels", out_channels)
        if extra_blocks is not None and not isinstance(extra_blocks, ExtraFPNBlock):
            raise TypeError(f"extra_blocks must be an ExtraFPNBlock or None, got {type(extra_blocks).__name__}")
        self.in_channels_list = list(in_channels_list)
        self.out_channels = out_channels
        conv_kwargs = dict(bias=norm_layer is None, norm_layer=norm_layer, act_layer=None)
        self.inner_blocks = nn.ModuleList(ConvNormAct(c, out_channels, 1, **conv_kwargs) for c in in_channels_list)
        self.layer_blocks = nn.ModuleList(
            ConvNormAct(out_channels, out_channels, 3, **conv_kwargs) for _ in in_channels_list
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                _init_conv(module)
        self.extra_blocks = extra_blocks

    def _check_features(self, features: object) -> None:
        if not isinstance(features, Mapping):
            raise TypeError(
                f"FeaturePyramidNetwork expects an ordered dict of named maps, got {type(features).__name__}"
            )
        if len(features) != len(self.inner_blocks):
            raise ValueError(
                f"FeaturePyramidNetwork was built for {len(self.inner_blocks)} maps, got {len(features)} "
                f"({list(features)})"
            )
        for (name, x), channels in zip(features.items(), self.in_channels_list, strict=True):
            if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != channels:
                shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise ValueError(f"map {name!r} must be a (N, {channels}, H, W) tensor, got {shape}")

    def forward(self, features: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        self._check_features(features)
        names, maps = list(features), list(features.values())
        # One step per level, deepest first: each step needs the merged map of the level above.
        merged = self.inner_blocks[-1](maps[-1])
        results = [self.layer_blocks[-1](merged)]
        for index in range(len(maps) - 2, -1, -1):
            lateral = self.inner_blocks[index](maps[index])
            merged = lateral + F.interpolate(merged, size=lateral.shape[-2:], mode="nearest")
            results.insert(0, self.layer_blocks[index](merged))
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, maps, names)
        return OrderedDict(zip(names, results, strict=True))
