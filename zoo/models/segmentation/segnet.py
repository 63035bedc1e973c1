"""SegNet (Badrinarayanan, Kendall and Cipolla, 2017, "SegNet: A Deep Convolutional Encoder-Decoder Architecture
for Image Segmentation", arXiv:1511.00561): VGG-16's 13 convolutions as the encoder, and a decoder that
upsamples with the encoder's max-pooling indices (unpooling puts each value back where the maximum was, zeros
elsewhere) instead of learning to upsample, followed by convolutions that densify the sparse maps:

    encoder stage s (s = 1..5, VGG-16's widths 64, 128, 256, 512, 512; 2, 2, 3, 3, 3 convs):
        3×3 conv-BN-ReLU ×n → 2×2/2 max-pool, keeping the indices and the pre-pool size
    decoder stage s (s = 5..1), the encoder stage mirrored:
        max-unpool with stage s's indices to its pre-pool size → 3×3 conv-BN-ReLU ×n, the channels of the
        encoder's convolutions run backwards (stage 4: 512 → 512 → 512 → 256)
    stage 1's last decoder conv, which would map back to the image channels, is the classifier: a plain
    3×3 conv (with bias) to the classes, no batch norm or ReLU; its output is "out" at the input size.

This is the authors' Caffe network (SegNet-Tutorial's ``segnet_train.prototxt``): every convolution keeps its
bias, batch norm has a scale and a shift, and the 13th decoder conv (``conv1_1_D``) goes straight to the classes.
Unpooling to the recorded pre-pool size (the role of Caffe's ``upsample_h/w``) lets any H, W ≥ 32 through,
odd ones and the paper's CamVid 360×480 (pooled 180, 90, 45, 22, 11) included.

Parameters, summed over the encoder's 13 convolutions c_in → c_out (VGG-16's 3 → 64 … 512 → 512) with K classes:
    encoder = Σ (9·c_in·c_out + 3·c_out)                     (conv, bias, BN γ β)        = 14,723,136
    decoder = Σ (9·c_out·c_in + 3·c_in) over all but 3 → 64, + 9·64·K + K (classifier)  = 14,719,872 + 577·K
so 29,455,125 at K = 21 and 29,449,355 at CamVid's K = 11 (the paper lists SegNet at about 29.5M).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.models.base import check_image_batch
from zoo.models.segmentation.encoder_decoder import check_positive_int
from zoo.models.vgg import vgg_stages
from zoo.registry import register_model

__all__ = ["MaxUnpool2d", "SegNet"]

SEGNET_PAPER = "Badrinarayanan et al. 2017, SegNet: A Deep Convolutional Encoder-Decoder Architecture, arXiv:1511.00561"


def _convs(widths: Sequence[int]) -> nn.Sequential:
    """3×3 conv (with bias, as the authors' Caffe convs) → BN → ReLU between each pair of ``widths``."""
    return nn.Sequential(*(ConvNormAct(c_in, c_out, 3, bias=True) for c_in, c_out in pairwise(widths)))


class MaxUnpool2d(nn.Module):
    """``forward(x, indices, output_size)`` is ``torch.nn.functional.max_unpool2d(x, indices, k, s,
    output_size=output_size)``: each value of ``x`` goes to its flat ``indices`` position in the
    ``output_size`` plane (as ``max_pool2d(..., return_indices=True)`` gives them), zeros elsewhere.

    Written as a scatter because torch's op checks ``output_size`` against the input's size with
    ``torch._check``, which fails under tracing (fvcore's FLOP count), where sizes are tensors. The positions
    alone place the values, so no kernel or stride is needed. Tested equal to torch's op.
    """

    def forward(self, x: torch.Tensor, indices: torch.Tensor, output_size: Sequence[int]) -> torch.Tensor:
        height, width = output_size
        flat = x.new_zeros(*x.shape[:2], height * width)
        return flat.scatter(2, indices.flatten(2), x.flatten(2)).view(*x.shape[:2], height, width)


class SegNet(nn.Module):
    """``encoder.stage{s}`` (conv-BN-ReLU Sequentials, named and built as VGG's stages so a ``vgg16_bn``
    state_dict's ``stage{s}.*`` convolutions load into them; each followed by a 2×2/2 max-pool that returns
    its indices), ``decoder.stage{s}`` (from stage 5 to 1, the order they run), ``unpool`` and ``classifier``.

    ``stage_widths`` holds each encoder stage's conv widths (VGG-16: ``[[64, 64], [128, 128], [256] * 3, …]``).
    ``forward`` returns ``{"out": logits}``, N × classes × H × W, as the other zoo segmenters.
    """

    def __init__(self, stage_widths: Sequence[Sequence[int]], *, num_classes: int = 21, in_chans: int = 3) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        check_positive_int("in_chans", in_chans)
        if not stage_widths or not all(stage_widths):
            raise ValueError(f"stage_widths must be a non-empty list of non-empty width lists, got {stage_widths!r}")
        self.num_classes, self.in_chans = num_classes, in_chans
        side = 2 ** len(stage_widths)  # one position left after the last pool
        self.min_input_size = (side, side)
        encoder, decoder = {}, {}
        in_channels = in_chans
        for index, widths in enumerate(stage_widths, start=1):
            channels = [in_channels, *widths]
            encoder[f"stage{index}"] = _convs(channels)
            # Mirrored; stage 1's way back to the image channels is the classifier instead.
            decoder[f"stage{index}"] = _convs(channels[::-1] if index > 1 else channels[:0:-1])
            in_channels = widths[-1]
        self.encoder = nn.ModuleDict(encoder)
        self.decoder = nn.ModuleDict(reversed(decoder.items()))
        self.unpool = MaxUnpool2d()
        self.classifier = nn.Conv2d(stage_widths[0][-1], num_classes, 3, padding=1)
        self._init_weights()

    def _init_weights(self) -> None:
        """The authors' initialisation: He ("msra", fan-in) normal convolutions, zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_image_batch(x, self.in_chans, type(self).__name__, self.classifier.weight.dtype)
        if min(x.shape[-2:]) < self.min_input_size[0]:
            raise ValueError(
                f"SegNet pools {len(self.encoder)} times by 2, so H and W must be at least "
                f"{self.min_input_size[0]}, got {tuple(x.shape[-2:])}"
            )
        switches = []  # (indices, pre-pool size) per encoder stage
        for stage in self.encoder.values():
            x = stage(x)
            size = x.shape[-2:]
            x, indices = F.max_pool2d(x, 2, 2, return_indices=True)
            switches.append((indices, size))
        for stage, (indices, size) in zip(self.decoder.values(), reversed(switches), strict=True):
            x = stage(self.unpool(x, indices, size))
        return {"out": self.classifier(x)}


# CamVid's 360×480, the paper's input size.
@register_model(task="segmentation", input_size=(360, 480), paper=SEGNET_PAPER)
def segnet_vgg16(*, num_classes: int = 21, in_chans: int = 3) -> SegNet:
    """The paper's SegNet: VGG-16-BN's 13 convolutions and their mirror, unpooling by the encoder's max-pool
    indices; 29,455,125 parameters at 21 classes (29,449,355 at CamVid's 11)."""
    widths = [[out_channels for out_channels, *_ in stage] for stage in vgg_stages(16)]
    return SegNet(widths, num_classes=num_classes, in_chans=in_chans)
