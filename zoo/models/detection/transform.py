"""The input and output transform of two-stage detectors (torchvision's ``GeneralizedRCNNTransform``).

For each image of ``H x W`` pixels, before the backbone:

    normalise   x <- (x - mean_c) / std_c                  per channel; skipped when image_mean/std is None
    resize      s = min(min_size / min(H, W), max_size / max(H, W)),   H' = floor(s H),  W' = floor(s W)
                bilinear (align_corners=False), the scale recomputed from the output size
                (F.interpolate's recompute_scale_factor=True); skipped when min_size is None.
                With ``fixed_size = (W', H')`` (SSD) every image is stretched to exactly that size instead.
    boxes       x <- x W' / W,   y <- y H' / H                  (the ratios in float32, as torchvision)
    batch       every image zero-padded at the bottom and right to the largest H', W' of the batch, each
                rounded up to a multiple of ``size_divisible`` (32: the coarsest FPN stride), by the
                detectors' one batcher (``zoo.models.detection.batching``)

A target's instance ``masks [K, H, W]`` (Mask R-CNN) are resized with the image, by nearest neighbour at the
same scale, and back to uint8. After the heads, ``postprocess`` scales the detected boxes back by W / W' and
H / H', and pastes detected ``masks`` (``[D, 1, M, M]``) into the original image at those boxes. In training
``min_size`` may be a tuple (multi-scale training): one entry is drawn per image from the global RNG as
``floor(U(0, n))``. The draw is made even when there is only one size, as torchvision does, so that the
samplers that draw after it see the same RNG state as torchvision's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.constants import IMAGENET_MEAN, IMAGENET_STD

from .batching import ImageList, as_image_list, batch_images
from .mask_head import paste_masks_in_image

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "GeneralizedRCNNTransform", "resize_boxes"]


def resize_boxes(boxes: Tensor, original_size: Sequence[int], new_size: Sequence[int]) -> Tensor:
    """``[K, 4]`` xyxy boxes on an image of ``original_size = (H, W)`` moved onto one of ``new_size``."""
    new = torch.tensor([float(s) for s in new_size], dtype=torch.float32, device=boxes.device)
    old = torch.tensor([float(s) for s in original_size], dtype=torch.float32, device=boxes.device)
    ratio_y, ratio_x = (new / old).unbind(0)
    ratios = torch.stack((ratio_x, ratio_y, ratio_x, ratio_y))
    return boxes * ratios


def _check_sizes(min_size: int | Sequence[int] | None, max_size: int | None) -> tuple[tuple[int, ...], int] | None:
    if min_size is None:
        return None
    sizes = (min_size,) if isinstance(min_size, int) else tuple(min_size)
    if not sizes or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ValueError(f"min_size: expected a positive int, a tuple of them, or None (no resizing), got {min_size!r}")
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= 0:
        raise ValueError(f"max_size: expected a positive int when min_size is given, got {max_size!r}")
    return sizes, max_size


class GeneralizedRCNNTransform(nn.Module):
    """Normalise, resize and batch images (and scale their target boxes); scale detections back.

    Args:
        min_size: the short side after resizing, or a tuple to draw from in training (the last entry is used
            in evaluation); None keeps every image at its own size (and ignores ``max_size``).
        max_size: the most the long side may have after resizing.
        image_mean, image_std: per-channel statistics; None for both skips normalisation (for data that the
            pipeline has already normalised).
        size_divisible: the padded batch's height and width are multiples of this.
        fixed_size: ``(width, height)`` (torchvision's order) every image is stretched to, whatever its aspect
            ratio (SSD); ``min_size`` is then still drawn in training, for the RNG, but not used.
    """

    def __init__(
        self,
        min_size: int | Sequence[int] | None = 800,
        max_size: int | None = 1333,
        image_mean: Sequence[float] | None = IMAGENET_MEAN,
        image_std: Sequence[float] | None = IMAGENET_STD,
        size_divisible: int = 32,
        fixed_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        resize = _check_sizes(min_size, max_size)
        if fixed_size is not None:
            if resize is None:
                raise ValueError("fixed_size: give min_size and max_size too (min_size=None turns resizing off)")
            if not (
                isinstance(fixed_size, (tuple, list))
                and len(fixed_size) == 2
                and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in fixed_size)
            ):
                raise ValueError(f"fixed_size: expected (width, height), two positive ints, got {fixed_size!r}")
            fixed_size = tuple(fixed_size)
        self.fixed_size = fixed_size
        self.min_size, self.max_size = resize if resize is not None else (None, None)
        if (image_mean is None) != (image_std is None):
            raise ValueError("image_mean and image_std: give both (to normalise) or neither (no normalisation)")
        if image_std is not None and (len(image_mean) != len(image_std) or not all(s > 0 for s in image_std)):
            raise ValueError(f"image_mean/image_std: expected equal lengths and std > 0, got {image_mean}, {image_std}")
        self.image_mean = None if image_mean is None else tuple(float(m) for m in image_mean)
        self.image_std = None if image_std is None else tuple(float(s) for s in image_std)
        if isinstance(size_divisible, bool) or not isinstance(size_divisible, int) or size_divisible < 1:
            raise ValueError(f"size_divisible: expected a positive int, got {size_divisible!r}")
        self.size_divisible = size_divisible

    def forward(
        self, images: Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None
    ) -> tuple[ImageList, list[dict[str, Tensor]] | None]:
        """Images ``[C, H, W]`` (and their targets, whose boxes are rescaled in copies of the dicts)."""
        images = as_image_list(images)
        if targets is not None and len(targets) != len(images):
            raise ValueError(f"targets: expected one per image ({len(images)}), got {len(targets)}")
        batch, new_targets = [], None if targets is None else []
        # A loop over the images: each has its own size (and, in training, its own drawn min_size).
        for index, image in enumerate(images):
            target = None if targets is None else dict(targets[index])
            image, target = self.resize(self.normalize(image), target)
            batch.append(image)
            if new_targets is not None:
                new_targets.append(target)
        return batch_images(batch, self.size_divisible), new_targets

    def normalize(self, image: Tensor) -> Tensor:
        if not image.is_floating_point():
            raise TypeError(f"images: expected floating-point tensors, got {image.dtype}")
        if self.image_mean is None:
            return image
        if image.shape[0] != len(self.image_mean):
            raise ValueError(
                f"images: expected {len(self.image_mean)} channels (one per image_mean entry), got {image.shape[0]}"
            )
        mean = torch.tensor(self.image_mean, dtype=image.dtype, device=image.device)
        std = torch.tensor(self.image_std, dtype=image.dtype, device=image.device)
        return (image - mean[:, None, None]) / std[:, None, None]

    def _short_side(self) -> int:
        if not self.training:
            return self.min_size[-1]
        return self.min_size[int(torch.empty(1).uniform_(0.0, float(len(self.min_size))).item())]

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None) -> tuple[Tensor, dict | None]:
        """The resized image and a target whose ``boxes`` are moved onto it (module docstring)."""
        if self.min_size is None:
            return image, target
        height, width = image.shape[-2:]
        scale = min(self._short_side() / min(height, width), self.max_size / max(height, width))
        if self.fixed_size is not None:
            size = (self.fixed_size[1], self.fixed_size[0])
            image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
        else:
            image = F.interpolate(
                image[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False
            )[0]
        if target is not None:
            target["boxes"] = resize_boxes(target["boxes"], (height, width), image.shape[-2:])
            if "masks" in target:
                masks = target["masks"][:, None].float()
                target["masks"] = F.interpolate(masks, scale_factor=scale, recompute_scale_factor=True)[:, 0].byte()
        return image, target

    def postprocess(
        self,
        detections: list[dict[str, Tensor]],
        image_sizes: Sequence[tuple[int, int]],
        original_image_sizes: Sequence[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """Move each image's detected ``boxes`` from its resized size back to its original size, and paste its
        ``masks`` (if any) into the original image."""
        for detection, size, original in zip(detections, image_sizes, original_image_sizes, strict=True):
            detection["boxes"] = resize_boxes(detection["boxes"], size, original)
            if "masks" in detection:
                detection["masks"] = paste_masks_in_image(detection["masks"], detection["boxes"], original)
        return detections

    def extra_repr(self) -> str:
        return (
            f"min_size={self.min_size}, max_size={self.max_size}, image_mean={self.image_mean}, "
            f"image_std={self.image_std}, size_divisible={self.size_divisible}, fixed_size={self.fixed_size}"
        )
