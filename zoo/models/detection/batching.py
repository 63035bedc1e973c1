"""The one image batcher of the detectors: images of different sizes into one zero-padded batch.

Images ``[C, H_i, W_i]`` are copied into the top-left corner of a zero tensor ``[N, C, H, W]`` (padding at the
bottom and right keeps every box coordinate as it is), with

    H = ⌈max_i H_i / d⌉ · d,   W = ⌈max_i W_i / d⌉ · d,    d = size_divisible

and each image's own ``(H_i, W_i)`` kept beside the batch (torchvision's ``ImageList``), so that detections
can be clipped to the image rather than to its padding. A detector whose strides must divide its input
exactly but which does not pad (``pad=False``) gets a ValueError instead of a larger batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.models.base import check_image_batch

__all__ = ["ImageList", "as_image_list", "batch_images"]


class ImageList(NamedTuple):
    """A padded batch ``tensors [N, C, H_pad, W_pad]`` and each image's size before padding, ``(H', W')``."""

    tensors: Tensor
    image_sizes: list[tuple[int, int]]


def as_image_list(images: Tensor | Sequence[Tensor]) -> list[Tensor]:
    """The images of a batch ``[N, C, H, W]`` or of a non-empty list of ``[C, H, W]`` tensors, as a list."""
    if isinstance(images, Tensor):
        if images.dim() != 4:
            raise ValueError(f"images: expected a batch [N, C, H, W] or a list of [C, H, W], got {list(images.shape)}")
        return list(images.unbind(0))
    if not isinstance(images, (list, tuple)) or not images:
        raise TypeError(f"images: expected a tensor [N, C, H, W] or a non-empty list of [C, H, W], got {images!r:.80}")
    for index, image in enumerate(images):
        if not isinstance(image, Tensor) or image.dim() != 3:
            shape = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"images[{index}]: expected a tensor [C, H, W], got {shape}")
    return list(images)


def _padded_size(size: int, size_divisible: int) -> int:
    return int(math.ceil(size / size_divisible) * size_divisible)


def batch_images(
    images: Tensor | Sequence[Tensor],
    size_divisible: int = 1,
    *,
    pad: bool = True,
    in_channels: int | None = None,
    model_name: str = "the detector",
    dtype: torch.dtype | None = None,
) -> ImageList:
    """One zero-padded batch of ``images`` (a batch ``[N, C, H, W]``, returned as it is when no padding is
    needed, or a list of ``[C, H, W]``) and their sizes (module docstring).

    Args:
        size_divisible: the batch's height and width are multiples of this.
        pad: pad up to the multiple; False raises a ValueError unless the largest image is a multiple already.
        in_channels: if given, every image must have this many channels and be floating point; otherwise a
            list is padded to the most channels of its images, as torchvision does.
        model_name: names the detector in the errors.
        dtype: if given (the detector's weights), the images must have it (a TypeError saying how to convert).
    """
    if isinstance(images, Tensor) and images.dim() == 4:
        if in_channels is not None:
            check_image_batch(images, in_channels, model_name, dtype)
        height, width = int(images.shape[-2]), int(images.shape[-1])
        image_sizes = [(height, width)] * len(images)
    else:
        images = as_image_list(images)
        if in_channels is not None:  # image by image, so that none is silently padded with zero channels
            for image in images:
                check_image_batch(image.unsqueeze(0), in_channels, model_name, dtype)
        image_sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
        height, width = (max(size[axis] for size in image_sizes) for axis in (0, 1))
    padded = (_padded_size(height, size_divisible), _padded_size(width, size_divisible))
    if height == 0 or width == 0 or (not pad and padded != (height, width)):
        multiple = f"positive multiples of {size_divisible} (its coarsest stride)" if not pad else "positive"
        raise ValueError(
            f"{model_name} expects an input whose height and width are {multiple}, got {height}×{width}; "
            "resize or pad the images"
        )
    if isinstance(images, Tensor):
        if padded != (height, width):
            images = F.pad(images, (0, padded[1] - width, 0, padded[0] - height))
        return ImageList(images, image_sizes)
    channels = max(image.shape[0] for image in images)
    batch = images[0].new_zeros((len(images), channels, *padded))
    for index, image in enumerate(images):  # a copy per image: they differ in size
        batch[index, : image.shape[0], : image.shape[1], : image.shape[2]].copy_(image)
    return ImageList(batch, image_sizes)
