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

from dataclasses import dataclass, field

__all__ = ["PUBLISHED", "Published"]

TORCHVISION_DOCS = "torchvision weights meta (num_params, _ops)"
SE_PAPER = "Hu et al. 2018, SENet Table 2 (ResNet v1 stride layout)"
MOBILENET_PAPER = "Howard et al. 2017, MobileNets Table 6 (million mult-adds)"


@dataclass(frozen=True)
class Published:
    params: int | None  # exact, where published
    gmacs: float  # giga multiply-adds at the canonical input size
    source: str
    gmacs_tolerance: float  # relative tolerance of our fvcore total against `gmacs`
    conv_linear_exact: bool = False  # True: our conv + linear subtotal must equal `gmacs` to rounding
    build_kwargs: dict = field(default_factory=dict)  # how the published variant is built


PUBLISHED: dict[str, Published] = {
    # name: params, GMACs at the model's default input size, source, tolerance of the fvcore total
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
    "alexnet": Published(61_100_840, 0.714, TORCHVISION_DOCS, 0.05, True),
    "vgg11": Published(132_863_336, 7.609, TORCHVISION_DOCS, 0.05, True),
    "vgg13": Published(133_047_848, 11.308, TORCHVISION_DOCS, 0.05, True),
    "vgg16": Published(138_357_544, 15.470, TORCHVISION_DOCS, 0.05, True),
    "vgg19": Published(143_667_240, 19.632, TORCHVISION_DOCS, 0.05, True),
    "vgg11_bn": Published(132_868_840, 7.609, TORCHVISION_DOCS, 0.05, True),
    "vgg13_bn": Published(133_053_736, 11.308, TORCHVISION_DOCS, 0.05, True),
    "vgg16_bn": Published(138_365_992, 15.470, TORCHVISION_DOCS, 0.05, True),
    "vgg19_bn": Published(143_678_248, 19.632, TORCHVISION_DOCS, 0.05, True),
    "shufflenet_v2_x0_5": Published(1_366_792, 0.040, TORCHVISION_DOCS, 0.07, True),
    "shufflenet_v2_x1_0": Published(2_278_604, 0.145, TORCHVISION_DOCS, 0.05, True),
    "shufflenet_v2_x1_5": Published(3_503_624, 0.296, TORCHVISION_DOCS, 0.05, True),
    "shufflenet_v2_x2_0": Published(7_393_996, 0.583, TORCHVISION_DOCS, 0.05, True),
    # torchvision documents GoogLeNet without its two auxiliary heads, Inception v3 with its one
    # (which does not run in eval, so it adds parameters and no MACs).
    "googlenet": Published(6_624_904, 1.498, TORCHVISION_DOCS, 0.05, True, {"aux_logits": False}),
    "inception_v3": Published(27_161_264, 5.713, TORCHVISION_DOCS, 0.05, True),
    "mobilenet_v2": Published(3_504_872, 0.301, TORCHVISION_DOCS, 0.05, True),
    "mobilenet_v3_large": Published(5_483_032, 0.217, TORCHVISION_DOCS, 0.05, True),
    "mobilenet_v3_small": Published(2_542_856, 0.057, TORCHVISION_DOCS, 0.05, True),
    "efficientnet_b0": Published(5_288_548, 0.386, TORCHVISION_DOCS, 0.05, True),
    # MobileNetV1: the paper counts convolutions and the classifier; batch norm adds 2-6 % in fvcore.
    "mobilenet_v1": Published(None, 0.569, MOBILENET_PAPER, 0.07),
    "mobilenet_v1_075": Published(None, 0.325, MOBILENET_PAPER, 0.07),
    "mobilenet_v1_050": Published(None, 0.149, MOBILENET_PAPER, 0.07),
    "mobilenet_v1_025": Published(None, 0.041, MOBILENET_PAPER, 0.07),
    "seresnet50": Published(None, 3.87, SE_PAPER, 0.07),
    "seresnet101": Published(None, 7.60, SE_PAPER, 0.07),
    "seresnet152": Published(None, 11.32, SE_PAPER, 0.07),
    "seresnext50_32x4d": Published(None, 4.25, SE_PAPER, 0.07),
    "seresnext101_32x4d": Published(None, 8.00, SE_PAPER, 0.07),
}
