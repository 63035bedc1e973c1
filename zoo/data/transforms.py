"""Classification image transforms, built from torchvision.transforms.v2.

    train: ToImage → random crop → [RandomHorizontalFlip] → [ColorJitter] → ToDtype → Normalize
    eval:  ToImage → Resize(⌊image_size / 0.875⌋) → CenterCrop(image_size) → ToDtype → Normalize

The random crop is RandomResizedCrop (Szegedy et al., 2014, the ImageNet recipe) or, when
``random_resized_crop=False`` and ``random_crop_padding > 0``, the CIFAR recipe: pad by
``random_crop_padding`` pixels, then crop ``image_size`` at a random position. A train pipeline
with neither uses the eval geometry. 0.875 is the ImageNet crop ratio (256 → 224) of the
torchvision and timm references; ``resize_eval=False`` skips the resize for datasets stored at
``image_size`` already (CIFAR), where the centre crop is then a no-op.

ToDtype maps uint8 to float32 x / 255 and Normalize computes (x - mean) / std per channel.
Inputs are PIL images or uint8 (H, W, C) numpy arrays.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence

import torch
from torchvision.transforms import v2

__all__ = ["AUGMENT_KEYS", "EVAL_CROP_RATIO", "build_transforms", "check_int", "check_mean_std", "resolve_augment"]

EVAL_CROP_RATIO = 0.875


def check_int(name: str, value: object, minimum: int) -> None:
    """ValueError unless ``value`` is an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_mean_std(mean: Sequence[float], std: Sequence[float], channels: int) -> None:
    """ValueError unless ``mean`` and ``std`` hold one finite number per channel each and every std is > 0."""
    for name, values in (("mean", mean), ("std", std)):
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"{name} must be a sequence of {channels} floats (one per channel), got {values!r}")
        if len(values) != channels:
            raise ValueError(
                f"{name} must have one value per channel: {channels} for {channels}-channel images, "
                f"got {len(values)} in {values!r}"
            )
        if any(isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) for v in values):
            raise ValueError(f"{name} must hold finite numbers, got {values!r}")
    if not all(value > 0 for value in std):
        raise ValueError(f"std must be > 0 in every channel, got {std!r}")


def _check_augment(
    random_resized_crop: bool,
    scale: Sequence[float],
    color_jitter: float,
    random_crop_padding: int,
) -> None:
    if not isinstance(scale, Sequence) or len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {scale!r}")
    if isinstance(color_jitter, bool) or not isinstance(color_jitter, (int, float)) or color_jitter < 0:
        raise ValueError(f"color_jitter must be a number >= 0, got {color_jitter!r}")
    check_int("random_crop_padding", random_crop_padding, 0)
    if random_resized_crop and random_crop_padding > 0:
        raise ValueError(
            f"random_crop_padding={random_crop_padding} applies only with "
            "random_resized_crop=False (the CIFAR-style padded crop replaces the resized crop)"
        )


def _eval_geometry(image_size: int, resize_eval: bool) -> list[Callable]:
    crop = v2.CenterCrop(image_size)
    if not resize_eval:
        return [crop]
    return [v2.Resize(math.floor(image_size / EVAL_CROP_RATIO), antialias=True), crop]


def build_transforms(
    train: bool,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    channels: int = 3,
    *,
    random_resized_crop: bool = True,
    scale: Sequence[float] = (0.08, 1.0),
    hflip: bool = True,
    color_jitter: float = 0.0,
    random_crop_padding: int = 0,
    resize_eval: bool = True,
) -> Callable:
    """The train (``train=True``) or eval pipeline of the module docstring, returning a normalised
    float32 (C, image_size, image_size) tensor. ``mean`` and ``std`` hold one value for each of the
    ``channels`` of the images; the augmentation options only affect training."""
    check_int("image_size", image_size, 1)
    check_int("channels", channels, 1)
    check_mean_std(mean, std, channels)
    _check_augment(random_resized_crop, scale, color_jitter, random_crop_padding)
    if train and random_resized_crop:
        geometry = [v2.RandomResizedCrop(image_size, scale=tuple(scale), antialias=True)]
    elif train and random_crop_padding > 0:
        geometry = [v2.RandomCrop(image_size, padding=random_crop_padding)]
    else:
        geometry = _eval_geometry(image_size, resize_eval)
    steps = [v2.ToImage(), *geometry]
    if train and hflip:
        steps.append(v2.RandomHorizontalFlip())
    if train and color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


AUGMENT_KEYS = tuple(
    name
    for name, parameter in inspect.signature(build_transforms).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
)


def resolve_augment(defaults: Mapping[str, object], augment: Mapping[str, object] | None) -> dict:
    """A datamodule's ``augment`` options: its ``defaults`` overridden by the user's ``augment``
    mapping, whose keys must be keyword arguments of `build_transforms`."""
    augment = {} if augment is None else augment
    if not isinstance(augment, Mapping):
        raise ValueError(f"data.augment must be a mapping of {list(AUGMENT_KEYS)}, got {augment!r}")
    unknown = sorted(set(augment) - set(AUGMENT_KEYS))
    if unknown:
        raise ValueError(f"data.augment has unknown keys {unknown}; expected some of {list(AUGMENT_KEYS)}")
    return {**defaults, **augment}
