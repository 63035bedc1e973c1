"""Pyramid pooling (Zhao et al., 2017, "Pyramid Scene Parsing Network", arXiv:1612.01105, §3.2): the same map
average-pooled to several grids, each summary projected, upsampled back and concatenated with the map itself.

For each bin b in ``bins`` (the paper's 1, 2, 3, 6), on a C_in-channel H×W map:

    adaptive average pool to b×b → 1×1 conv-BN-ReLU (C_in → C_b) → bilinear resize to H×W (align_corners=True)

then ``[branch_1, …, branch_n, x]`` are concatenated: n·C_b + C_in channels (2·C_in with the paper's
C_b = C_in / n). This is segmentation_models_pytorch's arrangement (``PSPModule``): the branches before the
input, and the 1×1 bin's conv with a bias and no batch norm, since batch norm over one value per channel and
image fails in training at batch size 1. The paper's PSPNet concatenates the input first and normalises every bin.

Parameters, with n bins: each projection has C_in·C_b weights, plus C_b biases for the 1×1 bin or 2·C_b batch-norm
γ, β for the others:
    params = n·C_in·C_b + Σ_b (C_b if b = 1 else 2·C_b)      (bins 1, 2, 3, 6: 4·C_in·C_b + 7·C_b)
    MACs   = Σ_b b²·C_in·C_b (the projections; pooling and resizing have no weights)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct

__all__ = ["PyramidPooling"]


class PyramidPooling(nn.Module):
    """``branches[i]`` is bin ``bins[i]``'s 1×1 projection; ``forward(x)`` returns ``[branches…, x]`` on channels
    (see the module docstring). ``branch_channels`` defaults to ``in_channels // len(bins)``."""

    def __init__(self, in_channels: int, bins: Sequence[int] = (1, 2, 3, 6), branch_channels: int | None = None):
        super().__init__()
        if isinstance(bins, (str, bytes)) or not isinstance(bins, Sequence) or not bins:
            raise TypeError(f"bins must be a non-empty sequence of grid sizes, e.g. (1, 2, 3, 6), got {bins!r}")
        for value, what in [(in_channels, "in_channels"), *((b, "each bin") for b in bins)]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{what} must be a positive int, got {value!r}")
        if branch_channels is None:
            branch_channels = in_channels // len(bins)
        if isinstance(branch_channels, bool) or not isinstance(branch_channels, int) or branch_channels < 1:
            raise ValueError(
                f"branch_channels must be a positive int (default in_channels // len(bins)), got {branch_channels!r}"
            )
        self.bins = tuple(bins)
        self.out_channels = len(self.bins) * branch_channels + in_channels
        self.branches = nn.ModuleList(
            ConvNormAct(in_channels, branch_channels, 1, bias=b == 1, norm_layer=None if b == 1 else nn.BatchNorm2d)
            for b in self.bins
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(branch(F.adaptive_avg_pool2d(x, b)), size=size, mode="bilinear", align_corners=True)
            for b, branch in zip(self.bins, self.branches, strict=True)
        ]
        return torch.cat([*pooled, x], dim=1)
