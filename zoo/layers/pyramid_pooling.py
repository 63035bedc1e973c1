"""Pyramid pooling (Zhao et al., 2017, "Pyramid Scene Parsing Network", arXiv:1612.01105, §3.2): the same map
average-pooled to several grids, each summary projected, upsampled back and concatenated with the map itself.

For each bin b in ``bins`` (the paper's 1, 2, 3, 6), on a C_in-channel H×W map:

    adaptive average pool to b×b → 1×1 conv-BN-ReLU (C_in → C_b) → bilinear resize to H×W (align_corners=True)

then the branches and the input are concatenated: n·C_b + C_in channels (2·C_in with the paper's
C_b = C_in / n). Two layouts differ in order and in the 1×1 bin:

    layout="smp"    ``[branch_1, …, branch_n, x]``, the 1×1 bin's conv with a bias and no batch norm (batch norm
                    over one value per channel and image fails in training at batch size 1):
                    segmentation_models_pytorch's ``PSPModule``.
    layout="paper"  ``[x, branch_1, …, branch_n]``, every bin conv (no bias)-BN-ReLU: the authors' own code
                    (the released Caffe models and hszhao/semseg's ``PPM``). Training needs batches of 2 or more.

Parameters, with n bins: each projection has C_in·C_b weights, plus 2·C_b batch-norm γ, β (or, for the 1×1 bin
in the smp layout, C_b biases):
    smp:   params = n·C_in·C_b + Σ_b (C_b if b = 1 else 2·C_b)      (bins 1, 2, 3, 6: 4·C_in·C_b + 7·C_b)
    paper: params = n·C_in·C_b + 2·n·C_b                             (bins 1, 2, 3, 6: 4·C_in·C_b + 8·C_b)
    MACs   = Σ_b b²·C_in·C_b (the projections; pooling and resizing have no weights)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct

__all__ = ["PYRAMID_LAYOUTS", "PyramidPooling"]

PYRAMID_LAYOUTS = ("smp", "paper")


class PyramidPooling(nn.Module):
    """``branches[i]`` is bin ``bins[i]``'s 1×1 projection; ``forward(x)`` returns ``[branches…, x]`` on channels
    (``[x, branches…]`` with ``layout="paper"``; see the module docstring). ``branch_channels`` defaults to
    ``in_channels // len(bins)``."""

    def __init__(
        self,
        in_channels: int,
        bins: Sequence[int] = (1, 2, 3, 6),
        branch_channels: int | None = None,
        layout: str = "smp",
    ):
        super().__init__()
        if layout not in PYRAMID_LAYOUTS:
            raise ValueError(f"layout must be one of {PYRAMID_LAYOUTS}, got {layout!r}")
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
        self.layout = layout
        self.out_channels = len(self.bins) * branch_channels + in_channels
        # smp's 1×1 bin is a conv with a bias and no batch norm; its other bins, and all the paper's, conv-BN-ReLU.
        unnormalised = {1} if layout == "smp" else set()
        self.branches = nn.ModuleList(
            ConvNormAct(
                in_channels, branch_channels, 1, bias=b in unnormalised,
                norm_layer=None if b in unnormalised else nn.BatchNorm2d,
            )
            for b in self.bins
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(branch(F.adaptive_avg_pool2d(x, b)), size=size, mode="bilinear", align_corners=True)
            for b, branch in zip(self.bins, self.branches, strict=True)
        ]
        return torch.cat([x, *pooled] if self.layout == "paper" else [*pooled, x], dim=1)
