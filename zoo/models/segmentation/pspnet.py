"""PSPNet as in the paper (Zhao et al., 2017, "Pyramid Scene Parsing Network", arXiv:1612.01105): a dilated
ResNet-50 keeps layer4's 2048 channels at stride 8, a pyramid pooling module adds context pooled over the whole
map and over 2×2, 3×3 and 6×6 grids, and a 3×3 conv reads both; an auxiliary head on layer3 helps training:

    image → ResNet-50 (layer3 dilated 2, layer4 dilated 4; stride 8) → layer4 (2048 ch)
          → pyramid pooling, bins 1, 2, 3, 6: each adaptive avg pool → 1×1 conv-BN-ReLU (512) → bilinear
            back, concatenated after the map itself (2048 + 4·512 = 4096 ch)
          → 3×3 conv-BN-ReLU (512) → dropout 0.1 → 1×1 conv (classes) → bilinear to the input → "out"
    auxiliary (aux_loss=True): layer3 (1024 ch) → 3×3 conv-BN-ReLU (256) → dropout 0.1 → 1×1 conv → "aux"

The pyramid is :class:`zoo.layers.pyramid_pooling.PyramidPooling` in the authors' layout (input first, batch
norm on every bin, so training needs batches of 2 or more); the head after it and the auxiliary head are
:class:`zoo.models.segmentation.deeplab.FCNHead` (with 512 and 1024 / 4 = 256 channels), and the wiring is
DeepLabV3's, so ``forward`` returns ``{"out", "aux"}`` at the input size, odd sizes included.

Where this differs from the authors' released networks: the backbone is torchvision's ResNet-50 (a 7×7 stem, not
their three 3×3 convolutions; the first block of each dilated stage keeps the previous dilation), upsampling uses
``align_corners=False`` as the other zoo segmenters, and the auxiliary loss weight is the segmentation task's
(0.5; the paper uses 0.4).

Parameters for K classes (ResNet-50 without its fc: 23,508,032):
    pyramid = 4·2048·512 + 8·512                          = 4,198,400
    head    = 9·4096·512 + 2·512 + 512·K + K              = 18,875,392 + 513·K
    aux     = 9·1024·256 + 2·256 + 256·K + K              = 2,359,808 + 257·K
so at K = 21: 46,592,597 without the auxiliary head and 48,957,802 with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.layers.pyramid_pooling import PyramidPooling
from zoo.registry import register_model

from .deeplab import DeepLabV3, FCNHead, _check_builder_args, _resnet_backbone

__all__ = ["PSPHead", "PSPNet"]

PSPNET_PAPER = "Zhao et al. 2017, Pyramid Scene Parsing Network, arXiv:1612.01105"


class PSPHead(nn.Module):
    """``pyramid`` (pyramid pooling, the paper's layout: ``[x, bins…]``) → ``head`` (3×3 conv-BN-ReLU to
    ``channels``, dropout 0.1, 1×1 conv to the classes)."""

    def __init__(
        self, in_channels: int, num_classes: int, bins: Sequence[int] = (1, 2, 3, 6), channels: int = 512
    ) -> None:
        super().__init__()
        self.pyramid = PyramidPooling(in_channels, bins, layout="paper")
        self.head = FCNHead(self.pyramid.out_channels, num_classes, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pyramid(x))


class PSPNet(DeepLabV3):
    """``backbone`` (dilated, stride 8) → :class:`PSPHead` on ``out_layer`` (and an FCN head on ``aux_layer``),
    upsampled to the input. The wiring is DeepLabV3's; only the head differs."""


@register_model(task="segmentation", input_size=473, paper=PSPNET_PAPER)
def pspnet_resnet50(*, num_classes: int = 21, aux_loss: bool = False, in_chans: int = 3) -> PSPNet:
    """The paper's PSPNet on a dilated ResNet-50 (stride 8), the auxiliary head on layer3 with ``aux_loss=True``;
    46,592,597 parameters at 21 classes, 48,957,802 with the auxiliary head. 473 px is the paper's crop."""
    _check_builder_args(num_classes, aux_loss)
    backbone = _resnet_backbone("resnet50", 8, (2, 3), in_chans)
    aux_info, out_info = backbone.feature_info
    return PSPNet(
        backbone,
        PSPHead(out_info["num_chs"], num_classes),
        FCNHead(aux_info["num_chs"], num_classes) if aux_loss else None,
        out_layer=out_info["module"],
        aux_layer=aux_info["module"] if aux_loss else None,
    )
