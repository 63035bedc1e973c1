"""Atrous Spatial Pyramid Pooling (Chen et al., 2017, "Rethinking Atrous Convolution for Semantic Image
Segmentation", arXiv:1706.05587), as torchvision's ``models.segmentation.deeplabv3.ASPP``.

Five parallel branches look at the same C_in-channel map with growing fields of view, each giving C channels:

    1×1 conv-BN-ReLU
    3×3 conv-BN-ReLU with dilation r, for each rate r in ``atrous_rates`` (padding r keeps the size)
    image pooling: global average pool → 1×1 conv-BN-ReLU → bilinear upsample back to the map's size

then concatenation → 1×1 projection conv-BN-ReLU to C channels → dropout 0.5. A 3×3 kernel with dilation r
spans 2r + 1 pixels; rates proportional to 1 / output stride keep that span fixed on the image, so the
paper uses (6, 12, 18) at output stride 16 and twice those at output stride 8 (:func:`aspp_rates`).

With n rates, an H×W input (P = H·W positions) and batch norm after each conv:
    params = C·C_in·(2 + 9n) + (n + 2)·C² + 2·C·(n + 3)
    MACs   = P·C·(C_in·(1 + 9n) + (n + 2)·C) + C_in·C        (convolutions; the pooled 1×1 conv is the last term)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct

__all__ = ["ASPP", "ASPPPooling", "aspp_rates"]

# Output stride → the paper's atrous rates (DeepLabv3 §4.1: doubled when the stride halves).
_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


def aspp_rates(output_stride: int) -> tuple[int, int, int]:
    """The ASPP atrous rates for a backbone at ``output_stride``: (6, 12, 18) at 16, (12, 24, 36) at 8."""
    if type(output_stride) is not int or output_stride not in _RATES:
        raise ValueError(f"output_stride must be 8 or 16 for ASPP's atrous rates, got {output_stride!r}")
    return _RATES[output_stride]


def _check_rates(atrous_rates: Sequence[int]) -> tuple[int, ...]:
    if isinstance(atrous_rates, (str, bytes)) or not isinstance(atrous_rates, Sequence) or not atrous_rates:
        raise ValueError(f"atrous_rates must be a non-empty sequence of positive ints, got {atrous_rates!r}")
    if not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in atrous_rates):
        raise ValueError(f"atrous_rates must be positive ints, got {tuple(atrous_rates)!r}")
    return tuple(atrous_rates)


def _torchvision_renames(pooling_index: int) -> list[tuple[str, str]]:
    """torchvision key → zoo key. Its branches are Sequentials (conv 0, norm 1), except the pooling branch,
    whose index 0 is the pool (conv 1, norm 2); its projection is Sequential(conv, norm, ReLU, dropout)."""
    return [
        (rf"^convs\.{pooling_index}\.1\.", f"convs.{pooling_index}.conv."),
        (rf"^convs\.{pooling_index}\.2\.", f"convs.{pooling_index}.bn."),
        (r"^convs\.(\d+)\.0\.", r"convs.\1.conv."),
        (r"^convs\.(\d+)\.1\.", r"convs.\1.bn."),
        (r"^project\.0\.", "project.conv."),
        (r"^project\.1\.", "project.bn."),
    ]


class ASPPPooling(ConvNormAct):
    """The image-level branch: global average pool → 1×1 conv-norm-act → bilinear upsample to the input's size."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__(in_channels, out_channels, 1, norm_layer=norm_layer, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = super().forward(F.adaptive_avg_pool2d(x, 1))
        return F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """``convs`` (1×1 branch, one 3×3 branch per rate, image pooling) → concat → ``project`` → ``dropout``.

    ``convs.i`` and ``project`` are :class:`ConvNormAct` (``.conv``, ``.bn``); torchvision's state_dict
    loads through ``reference_renames``, which depend on the number of rates (they find the pooling branch).
    """

    def __init__(
        self,
        in_channels: int,
        atrous_rates: Sequence[int] = (12, 24, 36),
        out_channels: int = 256,
        dropout: float = 0.5,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act_layer: str | Callable[..., nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        rates = _check_rates(atrous_rates)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.atrous_rates = rates
        norm_act = dict(norm_layer=norm_layer, act_layer=act_layer)
        self.convs = nn.ModuleList(
            [
                ConvNormAct(in_channels, out_channels, 1, **norm_act),
                *(ConvNormAct(in_channels, out_channels, 3, dilation=rate, **norm_act) for rate in rates),
                ASPPPooling(in_channels, out_channels, **norm_act),
            ]
        )
        self.project = ConvNormAct(len(self.convs) * out_channels, out_channels, 1, **norm_act)
        self.dropout = nn.Dropout(dropout)
        self.reference_renames = _torchvision_renames(pooling_index=len(rates) + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.project(torch.cat([branch(x) for branch in self.convs], dim=1)))
