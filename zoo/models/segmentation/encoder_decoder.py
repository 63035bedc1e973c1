"""The encoder–decoder segmenters of segmentation_models_pytorch (smp; Iakubovskii, 2019): a classifier's stage
maps feed a decoder, and a segmentation head turns the decoder's last map into class logits.

    image (N, C_in, H, W) → encoder → [x, f1 (/2), f2 (/4), …, f_depth (/2^depth)]
                          → decoder (U-Net, U-Net++, FPN or smp's PSP: one file each) → head → (N, K, H, W)

The encoder follows smp's convention, so that smp's state_dicts load and its decoders read the same maps: it
returns the input itself, then one map per halving of the resolution, ``depth`` of them. For a ResNet these are
the stem's conv-BN-ReLU (stride 2, before the max-pool) and layer1…layer4 (strides 4…32); with ``depth < 5`` the
deeper stages are not run, but, as in smp, they are kept (their weights count and load, and get no gradient).

The segmentation head is smp's: a k×k conv with bias (padding ⌊k/2⌋) to K classes, then, for u > 1, bilinear ×u
upsampling with ``align_corners=True``:

    head params = k²·C·K + K

Input sizes: smp's U-Net resizes every decoder map to the size of the encoder map it joins, so any H×W comes back
at H×W; its U-Net++, FPN and PSPNet upsample by fixed factors and refuse an H or W not divisible by the encoder's
output stride (2^depth, at most 32). So do these, with a ValueError naming the padded size that works.

``forward`` returns ``{"out": logits}`` as torchvision's segmenters do (smp returns the tensor itself).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from zoo.models.base import check_image_batch
from zoo.models.resnet import ResNet
from zoo.registry import create_model
from zoo.weights import nest_reference_renames

__all__ = [
    "SMP_RESNET34",
    "EncoderDecoder",
    "ResNetEncoder",
    "SegmentationHead",
    "check_decoder_channels",
    "check_positive_int",
]

SMP = "segmentation_models_pytorch"
# smp's builder arguments for the ResNet-34 models' references (encoder_weights=None is added by zoo.reference).
SMP_RESNET34 = {"encoder_name": "resnet34", "classes": 21}


def check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_decoder_channels(decoder_channels: object, num_stages: int) -> tuple[int, ...]:
    """``decoder_channels`` as a tuple of ``num_stages`` positive ints (one width per decoder stage)."""
    if isinstance(decoder_channels, (str, bytes)) or not isinstance(decoder_channels, Sequence):
        raise TypeError(f"decoder_channels must be a sequence of ints, got {decoder_channels!r}")
    if len(decoder_channels) != num_stages:
        raise ValueError(
            f"decoder_channels needs one width per decoder stage, {num_stages} here, got {len(decoder_channels)} "
            f"({tuple(decoder_channels)})"
        )
    for width in decoder_channels:
        check_positive_int("each decoder_channels entry", width)
    return tuple(decoder_channels)


class ResNetEncoder(nn.Module):
    """A zoo ResNet as smp's encoder: ``forward(x)`` returns ``[x, stem, layer1, …]``, ``depth + 1`` maps.

    The modules keep the ResNet's names (``conv1``, ``maxpool``, ``layer1``…``layer4``), so that smp's
    ``encoder.*`` keys, which are torchvision's ResNet keys, load through the ResNet's own renames. The
    classifier head is dropped; all four stages are kept whatever the depth (see the module docstring).
    """

    def __init__(self, backbone: str = "resnet34", *, depth: int = 5, in_chans: int = 3) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or not 3 <= depth <= 5:
            raise ValueError(f"depth must be 3, 4 or 5 (the stem and 2 to 4 ResNet stages), got {depth!r}")
        resnet = create_model(backbone, in_chans=in_chans)
        if not isinstance(resnet, ResNet):
            raise ValueError(f"backbone must name a zoo ResNet (resnet18, resnet34, resnet50, …), got {backbone!r}")
        self.in_chans, self.depth = in_chans, depth
        self.conv1, self.maxpool = resnet.conv1, resnet.maxpool
        self.stages = [info["module"] for info in resnet.feature_info]
        for name in self.stages:
            self.add_module(name, resnet.get_submodule(name))
        run = resnet.feature_info[: depth - 1]
        self.out_channels = [in_chans, resnet.conv1.conv.out_channels, *(info["num_chs"] for info in run)]
        self.output_stride = 2**depth
        self.reference_renames = list(resnet.reference_renames)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [x]
        x = self.conv1(x)
        features.append(x)
        x = self.maxpool(x)
        for name in self.stages[: self.depth - 1]:
            x = self.get_submodule(name)(x)
            features.append(x)
        return features


class SegmentationHead(nn.Module):
    """``conv`` (k×k, bias, padding ⌊k/2⌋) to the classes, then bilinear ×``upsampling`` (align_corners=True)."""

    reference_renames = [(r"^0\.", "conv.")]  # smp's head is a Sequential (conv, upsampling, activation)

    def __init__(self, in_channels: int, num_classes: int, kernel_size: int = 3, upsampling: int = 1) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("upsampling", upsampling)):
            check_positive_int(name, value)
        self.conv = nn.Conv2d(in_channels, num_classes, kernel_size, padding=kernel_size // 2)
        self.upsampling = upsampling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.upsampling > 1:
            x = F.interpolate(x, scale_factor=self.upsampling, mode="bilinear", align_corners=True)
        return x


def _padded(side: int, divisor: int) -> int:
    return -(-side // divisor) * divisor


class EncoderDecoder(nn.Module):
    """``encoder`` → ``decoder`` → ``segmentation_head`` (smp's attribute names, so its keys need few renames).

    ``name`` is smp's class name (``"Unet"``), for messages; ``size_divisor``: what H and W must be divisible by
    (1: any size). Reference keys are renamed by the
    encoder's, the decoder's and the head's ``reference_renames``, each under its attribute's name.
    """

    def __init__(
        self,
        encoder: ResNetEncoder,
        decoder: nn.Module,
        segmentation_head: SegmentationHead,
        *,
        name: str,
        size_divisor: int = 1,
    ) -> None:
        super().__init__()
        check_positive_int("size_divisor", size_divisor)
        self.name = name  # smp's class name, for error messages
        self.encoder, self.decoder, self.segmentation_head = encoder, decoder, segmentation_head
        self.in_chans, self.num_classes = encoder.in_chans, segmentation_head.conv.out_channels
        self.size_divisor = size_divisor
        self.reference_renames = [
            *nest_reference_renames("encoder", encoder.reference_renames),
            *nest_reference_renames("decoder", getattr(decoder, "reference_renames", [])),
            *nest_reference_renames("segmentation_head", segmentation_head.reference_renames),
        ]

    def check_input(self, x: torch.Tensor) -> None:
        check_image_batch(x, self.in_chans, self.name, next(self.parameters()).dtype)
        height, width = x.shape[-2:]
        d = self.size_divisor
        if height % d or width % d:
            raise ValueError(
                f"{self.name} upsamples by fixed factors, so it needs a height and width divisible by {d} (as {SMP}), "
                f"got {height}×{width}: pad the image to {_padded(height, d)}×{_padded(width, d)}"
            )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input(x)
        return {"out": self.segmentation_head(self.decoder(self.encoder(x)))}
