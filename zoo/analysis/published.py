"""Published parameter and compute figures, with their source and the tolerance they are checked to.

torchvision documents, per weights entry, `num_params` (exact) and `_ops` ("GFLOPS", in fact giga
multiply-adds of the convolutions and linear layers, to 3 decimals). fvcore additionally counts batch
norm, pooling and the like, so our total is compared to it loosely, and our conv + linear subtotal
tightly (to rounding).

The SE-Net paper (Hu et al., 2018, arXiv:1709.01507, Table 2) gives GFLOPs of the original ResNet
layout, stride on the first 1×1 conv of a block; timm's and zoo's SE-ResNets put it on the 3×3
("v1.5"), which costs about 6 % more at 224 — hence the wider tolerance on those rows.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PUBLISHED", "Published"]

TORCHVISION_DOCS = "torchvision weights meta (num_params, _ops)"
SE_PAPER = "Hu et al. 2018, SENet Table 2 (ResNet v1 stride layout)"


@dataclass(frozen=True)
class Published:
    params: int | None  # exact, where published
    gmacs: float  # giga multiply-adds at the canonical input size
    source: str
    gmacs_tolerance: float  # relative tolerance of our fvcore total against `gmacs`
    conv_linear_exact: bool = False  # True: our conv + linear subtotal must equal `gmacs` to rounding


PUBLISHED: dict[str, Published] = {
    # name: params, GMACs @ 224, source, tolerance of the fvcore total
    "resnet18": Published(11_689_512, 1.814, TORCHVISION_DOCS, 0.01, True),
    "resnet34": Published(21_797_672, 3.664, TORCHVISION_DOCS, 0.01, True),
    "resnet50": Published(25_557_032, 4.089, TORCHVISION_DOCS, 0.01, True),
    "resnet101": Published(44_549_160, 7.801, TORCHVISION_DOCS, 0.01, True),
    "resnet152": Published(60_192_808, 11.514, TORCHVISION_DOCS, 0.01, True),
    "resnext50_32x4d": Published(25_028_904, 4.230, TORCHVISION_DOCS, 0.01, True),
    "resnext101_32x8d": Published(88_791_336, 16.414, TORCHVISION_DOCS, 0.01, True),
    "resnext101_64x4d": Published(83_455_272, 15.460, TORCHVISION_DOCS, 0.01, True),
    "wide_resnet50_2": Published(68_883_240, 11.398, TORCHVISION_DOCS, 0.01, True),
    "wide_resnet101_2": Published(126_886_696, 22.753, TORCHVISION_DOCS, 0.01, True),
    "seresnet50": Published(None, 3.87, SE_PAPER, 0.07),
    "seresnet101": Published(None, 7.60, SE_PAPER, 0.07),
    "seresnet152": Published(None, 11.32, SE_PAPER, 0.07),
    "seresnext50_32x4d": Published(None, 4.25, SE_PAPER, 0.07),
    "seresnext101_32x4d": Published(None, 8.00, SE_PAPER, 0.07),
}
