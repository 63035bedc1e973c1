"""Inception modules of GoogLeNet (Szegedy et al., 2014, arXiv:1409.4842), Inception-v3 (Szegedy et al.,
2015, arXiv:1512.00567) and Inception-v4 (Szegedy et al., 2016, arXiv:1602.07261), as torchvision (GoogLeNet,
v3) and timm (v4) define them.

Every module is a *filter concatenation*: parallel branches read the same input and their outputs are stacked
along the channels,

    y = concat_c(b_1(x), …, b_n(x)),      C_out = Σ_i C_out(b_i),

so its parameters and multiply-adds are the sums over its branches. Every convolution is a ConvNormAct
(conv → BN with eps 1e-3, the value of the TensorFlow-ported weights → ReLU); for a k_h×k_w conv from C_in to
C_out channels on P output positions

    params = k_h·k_w·C_in·C_out + 2·C_out            MACs = P·k_h·k_w·C_in·C_out

(batch norm adds 2·P·C_out MACs when counted like fvcore, in eval mode; pooling has no parameters and no
counted MACs). In the closed forms below, P is the number of output positions of the block and P_in that of its
input; the two differ only in the reductions (stride-2, valid-padded: H_out = ⌊(H − 3)/2⌋ + 1).

Inception-v3 factorises n×n convolutions into 1×n and n×1 ones (cost ratio 2/n), and splits its widest
branches into a parallel 1×3 / 3×1 pair (``conv1x3``, ``conv3x1``).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct

__all__ = [
    "INCEPTION_V3_REFERENCE_RENAMES",
    "INCEPTION_V4_REFERENCE_RENAMES",
    "FilterConcat",
    "Inception",
    "InceptionA",
    "InceptionAux",
    "InceptionB",
    "InceptionC",
    "InceptionD",
    "InceptionE",
    "InceptionV3Aux",
    "InceptionV4A",
    "InceptionV4B",
    "InceptionV4C",
    "InceptionV4Mixed3a",
    "InceptionV4Mixed4a",
    "InceptionV4Mixed5a",
    "InceptionV4ReductionA",
    "InceptionV4ReductionB",
    "inception_conv",
]

# torchvision Inception-v3 key → zoo key (see zoo.load_reference_weights). torchvision names the convs of a
# branch `<branch>_1`, `<branch>_2`, …, and the two halves of a split `<branch>_2a` (1×3) / `<branch>_2b` (3×1);
# here a branch is a Sequential (0-based) and a split is a FilterConcat of `conv1x3` and `conv3x1`. The pool
# branch is Sequential(avg-pool, conv) here, a functional pool there.
INCEPTION_V3_REFERENCE_RENAMES = [
    *[(rf"(branch\w+?)_{i}\.", rf"\1.{i - 1}.") for i in range(1, 6)],
    *[(rf"(branch\w+?)_{i}a\.", rf"\1.{i - 1}.conv1x3.") for i in (2, 3)],
    *[(rf"(branch\w+?)_{i}b\.", rf"\1.{i - 1}.conv3x1.") for i in (2, 3)],
    (r"(^|\.)branch_pool\.(conv|bn)\.", r"\1branch_pool.1.\2."),
]

# timm Inception-v4 key → zoo key: timm's InceptionC names its convs `branch1_0`, `branch1_1a`, … (0-based).
INCEPTION_V4_REFERENCE_RENAMES = [
    (r"(branch\d)_(\d)\.", r"\1.\2."),
    (r"(branch\d)_(\d)a\.", r"\1.\2.conv1x3."),
    (r"(branch\d)_(\d)b\.", r"\1.\2.conv3x1."),
]

_BATCH_NORM_EPS_1E3 = partial(nn.BatchNorm2d, eps=1e-3)


def inception_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int = 1,
    padding: int | tuple[int, int] | None = None,
) -> ConvNormAct:
    """ConvNormAct with BN eps 1e-3 for a k or (k_h, k_w) kernel; "same" padding ``((k_h − 1)/2, (k_w − 1)/2)``
    unless given (``padding=0`` for the valid-padded convolutions)."""
    kernel_h, kernel_w = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    if padding is None:
        padding = ((kernel_h - 1) // 2, (kernel_w - 1) // 2)
    return ConvNormAct(
        in_channels, out_channels, kernel_size, stride=stride, padding=padding, norm_layer=_BATCH_NORM_EPS_1E3
    )


class FilterConcat(nn.Module):
    """Run every branch (the keyword arguments, in order) on the input; concatenate the outputs along channels."""

    def __init__(self, **branches: nn.Module) -> None:
        super().__init__()
        if not branches:
            raise ValueError("FilterConcat needs at least one branch, got none")
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], dim=1)


def _split_1x3_3x1(in_channels: int, out_channels: int) -> FilterConcat:
    """The parallel 1×3 and 3×1 convolutions that end Inception-v3's E and Inception-v4's C branches."""
    return FilterConcat(
        conv1x3=inception_conv(in_channels, out_channels, (1, 3)),
        conv3x1=inception_conv(in_channels, out_channels, (3, 1)),
    )


# --- GoogLeNet -------------------------------------------------------------------------------------------------
class Inception(FilterConcat):
    """GoogLeNet's module: 1×1 ∥ 1×1→3×3 ∥ 1×1→"5×5" ∥ 3×3 max-pool→1×1, at stride 1.

    Arguments are the columns of the paper's Table 1. As in torchvision (pytorch/vision#906), the "5×5" branch
    uses a 3×3 kernel, so that torchvision's weights load. With C = ``in_channels`` and P positions:
        params = C·(ch1x1 + ch3x3red + ch5x5red + pool_proj) + 9·(ch3x3red·ch3x3 + ch5x5red·ch5x5)
                 + 2·(ch1x1 + ch3x3red + ch3x3 + ch5x5red + ch5x5 + pool_proj)
        MACs   = P·[C·(ch1x1 + ch3x3red + ch5x5red + pool_proj) + 9·(ch3x3red·ch3x3 + ch5x5red·ch5x5)]
        C_out  = ch1x1 + ch3x3 + ch5x5 + pool_proj
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__(
            branch1=inception_conv(in_channels, ch1x1, 1),
            branch2=nn.Sequential(inception_conv(in_channels, ch3x3red, 1), inception_conv(ch3x3red, ch3x3, 3)),
            branch3=nn.Sequential(inception_conv(in_channels, ch5x5red, 1), inception_conv(ch5x5red, ch5x5, 3)),
            branch4=nn.Sequential(
                nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), inception_conv(in_channels, pool_proj, 1)
            ),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj


class InceptionAux(nn.Module):
    """GoogLeNet's auxiliary classifier: adaptive 4×4 average pool → 1×1 conv to 128 → linear 2048→1024 → ReLU
    → dropout → linear to K classes (identity for K = 0). On any input size, with C = ``in_channels``:
        params = 128·C + 256 + 2048·1024 + 1024 + (1024·K + K)
        MACs   = 16·128·C + 2048·1024 + 1024·K         (+ H·W·C for the pool, 2·16·128 for the BN)
    """

    def __init__(self, in_channels: int, num_classes: int, drop_rate: float = 0.7) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.conv = inception_conv(in_channels, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(1024, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.drop(self.act(self.fc1(x))))


# --- Inception-v3 ----------------------------------------------------------------------------------------------
class InceptionA(FilterConcat):
    """Inception-v3 35×35 module (Mixed_5b–5d): 1×1 (64) ∥ 1×1 (48)→5×5 (64) ∥ 1×1 (64)→3×3 (96)→3×3 (96)
    ∥ 3×3 avg-pool→1×1 (``pool_features``). With C = ``in_channels``, F = ``pool_features``:
        params = C·(176 + F) + 215040 + 2·(432 + F)       (215040 = 25·48·64 + 9·64·96 + 9·96·96)
        MACs   = P·[C·(176 + F) + 215040]                  C_out = 224 + F
    """

    reference_renames = INCEPTION_V3_REFERENCE_RENAMES

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__(
            branch1x1=inception_conv(in_channels, 64, 1),
            branch5x5=nn.Sequential(inception_conv(in_channels, 48, 1), inception_conv(48, 64, 5)),
            branch3x3dbl=nn.Sequential(
                inception_conv(in_channels, 64, 1), inception_conv(64, 96, 3), inception_conv(96, 96, 3)
            ),
            branch_pool=nn.Sequential(
                nn.AvgPool2d(3, stride=1, padding=1), inception_conv(in_channels, pool_features, 1)
            ),
        )
        self.out_channels = 224 + pool_features


class InceptionB(FilterConcat):
    """Inception-v3 reduction 35×35 → 17×17 (Mixed_6a): 3×3/2 (384) ∥ 1×1 (64)→3×3 (96)→3×3/2 (96)
    ∥ 3×3/2 max-pool, the strided ops valid-padded. With C = ``in_channels``:
        params = 3520·C + 138240 + 1280
        MACs   = P_in·(64·C + 55296) + P·(3456·C + 82944)         C_out = 480 + C
    """

    reference_renames = INCEPTION_V3_REFERENCE_RENAMES

    def __init__(self, in_channels: int) -> None:
        super().__init__(
            branch3x3=inception_conv(in_channels, 384, 3, stride=2, padding=0),
            branch3x3dbl=nn.Sequential(
                inception_conv(in_channels, 64, 1),
                inception_conv(64, 96, 3),
                inception_conv(96, 96, 3, stride=2, padding=0),
            ),
            branch_pool=nn.MaxPool2d(3, stride=2),
        )
        self.out_channels = 480 + in_channels


class InceptionC(FilterConcat):
    """Inception-v3 17×17 module (Mixed_6b–6e) with 7×7 convolutions factorised into 1×7 and 7×1:
    1×1 (192) ∥ 1×1 (c)→1×7 (c)→7×1 (192) ∥ 1×1 (c)→7×1 (c)→1×7 (c)→7×1 (c)→1×7 (192) ∥ avg-pool→1×1 (192).
    With C = ``in_channels``, c = ``channels_7x7``:
        params = C·(384 + 2c) + 28·c² + 2688·c + 2·(768 + 6c)
        MACs   = P·[C·(384 + 2c) + 28·c² + 2688·c]                C_out = 768
    """

    reference_renames = INCEPTION_V3_REFERENCE_RENAMES

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        c7 = channels_7x7
        super().__init__(
            branch1x1=inception_conv(in_channels, 192, 1),
            branch7x7=nn.Sequential(
                inception_conv(in_channels, c7, 1), inception_conv(c7, c7, (1, 7)), inception_conv(c7, 192, (7, 1))
            ),
            branch7x7dbl=nn.Sequential(
                inception_conv(in_channels, c7, 1),
                inception_conv(c7, c7, (7, 1)),
                inception_conv(c7, c7, (1, 7)),
                inception_conv(c7, c7, (7, 1)),
                inception_conv(c7, 192, (1, 7)),
            ),
            branch_pool=nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), inception_conv(in_channels, 192, 1)),
        )
        self.out_channels = 768


class InceptionD(FilterConcat):
    """Inception-v3 reduction 17×17 → 8×8 (Mixed_7a): 1×1 (192)→3×3/2 (320) ∥ 1×1 (192)→1×7→7×1→3×3/2 (192)
    ∥ 3×3/2 max-pool, the strided ops valid-padded. With C = ``in_channels``:
        params = 384·C + 1400832 + 2560
        MACs   = P_in·(384·C + 516096) + P·884736                 C_out = 512 + C
    """

    reference_renames = INCEPTION_V3_REFERENCE_RENAMES

    def __init__(self, in_channels: int) -> None:
        super().__init__(
            branch3x3=nn.Sequential(
                inception_conv(in_channels, 192, 1), inception_conv(192, 320, 3, stride=2, padding=0)
            ),
            branch7x7x3=nn.Sequential(
                inception_conv(in_channels, 192, 1),
                inception_conv(192, 192, (1, 7)),
                inception_conv(192, 192, (7, 1)),
                inception_conv(192, 192, 3, stride=2, padding=0),
            ),
            branch_pool=nn.MaxPool2d(3, stride=2),
        )
        self.out_channels = 512 + in_channels


class InceptionE(FilterConcat):
    """Inception-v3 8×8 module (Mixed_7b, 7c) with expanded filter banks: 1×1 (320) ∥ 1×1 (384)→[1×3 ∥ 3×1]
    (2·384) ∥ 1×1 (448)→3×3 (384)→[1×3 ∥ 3×1] (2·384) ∥ avg-pool→1×1 (192). With C = ``in_channels``:
        params = 1344·C + 3317760 + 6528
        MACs   = P·(1344·C + 3317760)                             C_out = 2048
    """

    reference_renames = INCEPTION_V3_REFERENCE_RENAMES

    def __init__(self, in_channels: int) -> None:
        super().__init__(
            branch1x1=inception_conv(in_channels, 320, 1),
            branch3x3=nn.Sequential(inception_conv(in_channels, 384, 1), _split_1x3_3x1(384, 384)),
            branch3x3dbl=nn.Sequential(
                inception_conv(in_channels, 448, 1), inception_conv(448, 384, 3), _split_1x3_3x1(384, 384)
            ),
            branch_pool=nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), inception_conv(in_channels, 192, 1)),
        )
        self.out_channels = 2048


class InceptionV3Aux(nn.Module):
    """Inception-v3's auxiliary classifier on the 17×17 map: 5×5/3 average pool (valid) → 1×1 conv (128)
    → 5×5 conv (768, valid) → global average pool → linear to K classes (identity for K = 0).

    The valid pool and 5×5 conv need an input map of at least 17×17. With C = ``in_channels``, P_a positions
    after the pool and P_c after the 5×5 conv (1 on a 17×17 map):
        params = 128·C + 256 + 2457600 + 1536 + (768·K + K)
        MACs   = P_a·128·C + P_c·2457600 + 768·K              (+ BN and the global pool)
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = inception_conv(in_channels, 128, 1)
        self.conv1 = inception_conv(128, 768, 5, padding=0)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(768, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(self.pool(x)))
        return self.fc(torch.flatten(self.global_pool(x), 1))


# --- Inception-v4 (timm) ---------------------------------------------------------------------------------------
# The stem's three filter concatenations (Fig. 3 of the paper) and the modules of Figs. 4–7; the widths are the
# paper's, the input width defaults to the one each module sees in the network.
class InceptionV4Mixed3a(FilterConcat):
    """Stem, first concatenation: 3×3/2 max-pool ∥ 3×3/2 conv (96), valid-padded; 147² → 73² at C = 64.
    params = 864·C + 192        MACs = P·864·C           C_out = C + 96
    """

    def __init__(self, in_channels: int = 64) -> None:
        super().__init__(
            maxpool=nn.MaxPool2d(3, stride=2),
            conv=inception_conv(in_channels, 96, 3, stride=2, padding=0),
        )
        self.out_channels = in_channels + 96


class InceptionV4Mixed4a(FilterConcat):
    """Stem, second concatenation: 1×1 (64)→3×3 (96) ∥ 1×1 (64)→1×7 (64)→7×1 (64)→3×3 (96), the 3×3s valid;
    73² → 71² at C = 160.
        params = 128·C + 167936 + 896
        MACs   = P_in·(128·C + 57344) + P·110592             C_out = 192
    """

    def __init__(self, in_channels: int = 160) -> None:
        super().__init__(
            branch0=nn.Sequential(inception_conv(in_channels, 64, 1), inception_conv(64, 96, 3, padding=0)),
            branch1=nn.Sequential(
                inception_conv(in_channels, 64, 1),
                inception_conv(64, 64, (1, 7)),
                inception_conv(64, 64, (7, 1)),
                inception_conv(64, 96, 3, padding=0),
            ),
        )
        self.out_channels = 192


class InceptionV4Mixed5a(FilterConcat):
    """Stem, third concatenation: 3×3/2 conv (192) ∥ 3×3/2 max-pool, valid-padded; 71² → 35² at C = 192.
    params = 1728·C + 384       MACs = P·1728·C          C_out = 192 + C
    """

    def __init__(self, in_channels: int = 192) -> None:
        super().__init__(
            conv=inception_conv(in_channels, 192, 3, stride=2, padding=0),
            maxpool=nn.MaxPool2d(3, stride=2),
        )
        self.out_channels = 192 + in_channels


class InceptionV4A(FilterConcat):
    """Inception-A (35×35, Fig. 4): 1×1 (96) ∥ 1×1 (64)→3×3 (96) ∥ 1×1 (64)→3×3 (96)→3×3 (96)
    ∥ avg-pool (padding excluded from the mean)→1×1 (96). With C = ``in_channels``:
        params = 320·C + 193536 + 1216      MACs = P·(320·C + 193536)      C_out = 384
    """

    def __init__(self, in_channels: int = 384) -> None:
        super().__init__(
            branch0=inception_conv(in_channels, 96, 1),
            branch1=nn.Sequential(inception_conv(in_channels, 64, 1), inception_conv(64, 96, 3)),
            branch2=nn.Sequential(
                inception_conv(in_channels, 64, 1), inception_conv(64, 96, 3), inception_conv(96, 96, 3)
            ),
            branch3=nn.Sequential(
                nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), inception_conv(in_channels, 96, 1)
            ),
        )
        self.out_channels = 384


class InceptionV4ReductionA(FilterConcat):
    """Reduction-A (35² → 17², Fig. 7, k = 192, l = 224, m = 256, n = 384): 3×3/2 (384) ∥ 1×1 (192)→3×3 (224)
    →3×3/2 (256) ∥ 3×3/2 max-pool, the strided ops valid-padded. With C = ``in_channels``:
        params = 3648·C + 903168 + 2112
        MACs   = P_in·(192·C + 387072) + P·(3456·C + 516096)      C_out = 640 + C
    """

    def __init__(self, in_channels: int = 384) -> None:
        super().__init__(
            branch0=inception_conv(in_channels, 384, 3, stride=2, padding=0),
            branch1=nn.Sequential(
                inception_conv(in_channels, 192, 1),
                inception_conv(192, 224, 3),
                inception_conv(224, 256, 3, stride=2, padding=0),
            ),
            branch2=nn.MaxPool2d(3, stride=2),
        )
        self.out_channels = 640 + in_channels


class InceptionV4B(FilterConcat):
    """Inception-B (17×17, Fig. 5): 1×1 (384) ∥ 1×1 (192)→1×7 (224)→7×1 (256)
    ∥ 1×1 (192)→7×1 (192)→1×7 (224)→7×1 (224)→1×7 (256) ∥ avg-pool (padding excluded)→1×1 (128).
        params = 896·C + 2014208 + 4544     MACs = P·(896·C + 2014208)     C_out = 1024
    """

    def __init__(self, in_channels: int = 1024) -> None:
        super().__init__(
            branch0=inception_conv(in_channels, 384, 1),
            branch1=nn.Sequential(
                inception_conv(in_channels, 192, 1), inception_conv(192, 224, (1, 7)), inception_conv(224, 256, (7, 1))
            ),
            branch2=nn.Sequential(
                inception_conv(in_channels, 192, 1),
                inception_conv(192, 192, (7, 1)),
                inception_conv(192, 224, (1, 7)),
                inception_conv(224, 224, (7, 1)),
                inception_conv(224, 256, (1, 7)),
            ),
            branch3=nn.Sequential(
                nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), inception_conv(in_channels, 128, 1)
            ),
        )
        self.out_channels = 1024


class InceptionV4ReductionB(FilterConcat):
    """Reduction-B (17² → 8², Fig. 8): 1×1 (192)→3×3/2 (192) ∥ 1×1 (256)→1×7 (256)→7×1 (320)→3×3/2 (320)
    ∥ 3×3/2 max-pool, the strided ops valid-padded. With C = ``in_channels``:
        params = 448·C + 2285568 + 3072
        MACs   = P_in·(448·C + 1032192) + P·1253376              C_out = 512 + C
    """

    def __init__(self, in_channels: int = 1024) -> None:
        super().__init__(
            branch0=nn.Sequential(
                inception_conv(in_channels, 192, 1), inception_conv(192, 192, 3, stride=2, padding=0)
            ),
            branch1=nn.Sequential(
                inception_conv(in_channels, 256, 1),
                inception_conv(256, 256, (1, 7)),
                inception_conv(256, 320, (7, 1)),
                inception_conv(320, 320, 3, stride=2, padding=0),
            ),
            branch2=nn.MaxPool2d(3, stride=2),
        )
        self.out_channels = 512 + in_channels


class InceptionV4C(FilterConcat):
    """Inception-C (8×8, Fig. 6): 1×1 (256) ∥ 1×1 (384)→[1×3 ∥ 3×1] (2·256)
    ∥ 1×1 (384)→3×1 (448)→1×3 (512)→[1×3 ∥ 3×1] (2·256) ∥ avg-pool (padding excluded)→1×1 (256).
        params = 1280·C + 2580480 + 6528    MACs = P·(1280·C + 2580480)    C_out = 1536
    """

    reference_renames = INCEPTION_V4_REFERENCE_RENAMES

    def __init__(self, in_channels: int = 1536) -> None:
        super().__init__(
            branch0=inception_conv(in_channels, 256, 1),
            branch1=nn.Sequential(inception_conv(in_channels, 384, 1), _split_1x3_3x1(384, 256)),
            branch2=nn.Sequential(
                inception_conv(in_channels, 384, 1),
                inception_conv(384, 448, (3, 1)),
                inception_conv(448, 512, (1, 3)),
                _split_1x3_3x1(512, 256),
            ),
            branch3=nn.Sequential(
                nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), inception_conv(in_channels, 256, 1)
            ),
        )
        self.out_channels = 1536
