"""Detection augmentation: geometric transforms that move boxes (and instance masks) with the pixels.

A sample is ``(image, target)``: a float image ``[C, H, W]`` and ``{"boxes": [N, 4] xyxy in pixels,
"labels": [N], optional "masks": uint8/bool [N, H, W]}`` (:func:`~zoo.models.detection.targets.check_detection_target`).
Coordinates are continuous pixel edges, pixel (i, j) covering [j, j + 1) × [i, i + 1), as in torchvision.

* **Horizontal flip**: x ↦ W − x, so a box (x1, y1, x2, y2) becomes (W − x2, y1, W − x1, y2).
* **Resized crop** of the window (top, left, h, w) to an output of (H', W'): x ↦ (x − left) · W'/w,
  y ↦ (y − top) · H'/h; the image is resized bilinearly (antialiased), masks by nearest-exact sampling.
* **Affine** with torchvision's parameters (``torchvision.transforms.v2.functional.affine``): about the
  image centre c, p ↦ M p with M = T(t) · T(c) · R(a) · S(s) · SHy(sy) · SHx(sx) · T(−c), where R(a) turns by
  angle a (clockwise on screen, y pointing down), S(s) scales, SHx(sx) = [[1, −tan sx], [0, 1]] and
  SHy(sy) = [[1, 0], [−tan sy, 1]] shear. Each output pixel centre samples the input at M⁻¹ p (bilinear for
  the image, nearest for masks, ``fill`` outside). A box becomes the enclosing box of its four transformed
  corners, which contains the object however it turned (and is looser than the object after a rotation).
* **Mosaic** (Bochkovskiy et al., YOLOv4, 2020): four samples share one canvas of (H, W) around a random
  centre (cx, cy); each is resized to (⌊H/2⌋, ⌊W/2⌋) and placed with a corner at the centre (top-left,
  top-right, bottom-left, bottom-right), so its boxes scale by the resize and shift by the corner's offset.
  This is Ultralytics' mosaic of four full-size images on a 2H × 2W canvas, shrunk by 2.

**The dropping rule**, the same for every transform: boxes are clipped to the output image, and a box is
kept (with its label and mask) when its clipped width and height are > 0 and its clipped area is at least
``min_area_fraction`` (default 0.5) of its area before clipping, both measured in the output image; that is,
an object that lost more than half of its box to the image border is dropped. Other target keys (an
``image_id``) are kept by the one-sample transforms and left out of a mosaic.

The random transforms draw their parameters from a ``torch.Generator`` (or an int seed), never from the
global generator. :class:`DetectionAugment` holds the ``data.augment`` options and applies
mosaic → affine → resized crop → flip, each with its probability; :class:`AugmentedDetection` wraps a
training set with it, drawing sample ``index`` of epoch ``epoch`` from a generator seeded by
(seed, epoch, index), so an epoch's augmentations do not depend on workers or on what came before.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import Dataset

from zoo.data.resumable import EpochSampler
from zoo.models.detection.targets import check_detection_target

__all__ = [
    "AugmentedDetection",
    "DetectionAugment",
    "EpochKeyedSampler",
    "Mosaic",
    "RandomAffine",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "affine",
    "affine_matrix",
    "check_sample",
    "horizontal_flip",
    "mosaic",
    "resize_masks",
    "resized_crop",
]

Sample = tuple[Tensor, dict]
MIN_AREA_FRACTION = 0.5


# ---------------------------------------------------------------------------------------------------- checks


def check_sample(image: object, target: object, where: str, index: int = 0) -> Sample:
    """``(image, target)`` with float boxes and int64 labels, or an error naming ``where`` (the transform)
    and what was expected: TypeError for an image that is not a tensor, ValueError otherwise."""
    if not isinstance(image, Tensor):
        raise TypeError(f"{where}: image {index}: expected a float tensor [C, H, W], got {type(image).__name__}")
    if image.dim() != 3 or not image.is_floating_point():
        raise ValueError(
            f"{where}: image {index}: expected a float tensor [C, H, W], got {image.dtype} of shape {list(image.shape)}"
        )
    try:
        target = check_detection_target(target, index, mask_size=tuple(image.shape[-2:]))
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    return image, target


def _generator(generator: torch.Generator | int | None) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    if generator is None:  # a fresh seed from the OS, leaving the global generator alone
        return torch.Generator().manual_seed(secrets.randbits(63))
    if isinstance(generator, bool) or not isinstance(generator, int):
        raise TypeError(f"generator: expected a torch.Generator, an int seed or None, got {type(generator).__name__}")
    return torch.Generator().manual_seed(generator)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _check_probability(name: str, p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"{name}: expected a probability in [0, 1], got {p!r}")
    return float(p)


def _check_range(name: str, value: object, low: float, high: float) -> tuple[float, float]:
    ok = isinstance(value, Sequence) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
    if not ok or not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{name}: expected (min, max) with {low} <= min <= max <= {high}, got {value!r}")
    return float(value[0]), float(value[1])


def _check_number(name: str, value: object, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name}: expected a number in [{low}, {high}], got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------------- boxes


def _keep_visible(target: dict, moved: Tensor, size: tuple[int, int], min_area_fraction: float) -> dict:
    """``target`` with its boxes replaced by ``moved`` clipped to ``size`` (H, W), keeping only the boxes that
    pass the dropping rule (module docstring), and their labels and masks."""
    height, width = size
    clipped = torch.stack(
        [
            moved[:, 0].clamp(0, width),
            moved[:, 1].clamp(0, height),
            moved[:, 2].clamp(0, width),
            moved[:, 3].clamp(0, height),
        ],
        dim=1,
    )
    sides = clipped[:, 2:] - clipped[:, :2]
    area = (moved[:, 2:] - moved[:, :2]).prod(dim=1)
    keep = (sides > 0).all(dim=1) & (sides.prod(dim=1) >= min_area_fraction * area)
    kept = {**target, "boxes": clipped[keep], "labels": target["labels"][keep]}
    if "masks" in target:
        kept["masks"] = target["masks"][keep]
    return kept


def resize_masks(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-exact resize: output pixel j samples the input pixel whose span holds its centre."""
    if len(masks) == 0:
        return masks.new_zeros(0, *size)
    resized = F.interpolate(masks[None].float(), size=size, mode="nearest-exact")[0]
    return resized.to(masks.dtype)


# ---------------------------------------------------------------------------------------------------- functional


def horizontal_flip(image: Tensor, target: dict) -> Sample:
    """Mirror left to right: pixels x ↦ W − x, boxes (x1, y1, x2, y2) ↦ (W − x2, y1, W − x1, y2), masks too.
    Equal to ``torchvision.transforms.v2.functional.horizontal_flip`` on the image, BoundingBoxes and Mask."""
    image, target = check_sample(image, target, "horizontal_flip")
    width = image.shape[-1]
    boxes = target["boxes"]
    flipped = {**target, "boxes": torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)}
    if "masks" in target:
        flipped["masks"] = target["masks"].flip(-1)
    return image.flip(-1), flipped


def resized_crop(
    image: Tensor,
    target: dict,
    top: int,
    left: int,
    height: int,
    width: int,
    size: tuple[int, int],
    *,
    min_area_fraction: float = MIN_AREA_FRACTION,
) -> Sample:
    """Crop rows [top, top + height) and columns [left, left + width), then resize to ``size`` (H', W'):
    x ↦ (x − left) · W'/width, y ↦ (y − top) · H'/height; boxes clipped and dropped by the module's rule.
    The image is resized bilinearly with antialiasing and the masks by nearest-exact sampling, as
    ``torchvision.transforms.v2.functional.resized_crop`` does with those interpolation modes."""
    image, target = check_sample(image, target, "resized_crop")
    image_height, image_width = image.shape[-2:]
    if not (0 <= top and 0 <= left and 0 < height and 0 < width):
        raise ValueError(
            f"resized_crop: expected top, left >= 0 and height, width > 0, got {(top, left, height, width)}"
        )
    if top + height > image_height or left + width > image_width:
        raise ValueError(
            f"resized_crop: the window rows {top}..{top + height}, columns {left}..{left + width} reaches outside "
            f"the {image_height}×{image_width} (H×W) image"
        )
    size = (int(size[0]), int(size[1]))
    window = image[:, top : top + height, left : left + width]
    resized = F.interpolate(window[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    factor = torch.tensor([size[1] / width, size[0] / height] * 2)
    moved = (target["boxes"] - torch.tensor([left, top, left, top], dtype=torch.float32)) * factor
    if "masks" in target:
        target = {**target, "masks": resize_masks(target["masks"][:, top : top + height, left : left + width], size)}
    return resized, _keep_visible(target, moved, size, min_area_fraction)


def affine_matrix(
    angle: float, translate: tuple[float, float], scale: float, shear: tuple[float, float], center: tuple[float, float]
) -> Tensor:
    """The 3×3 forward matrix M = T(t) · T(c) · R(a) · S(s) · SHy(sy) · SHx(sx) · T(−c) of the module docstring
    (angles in degrees), in pixel-edge coordinates; torchvision's convention for ``affine``."""
    a, sx, sy = (math.radians(v) for v in (angle, *shear))

    def translation(x: float, y: float) -> Tensor:
        return torch.tensor([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]], dtype=torch.float64)

    rotation = torch.tensor(
        [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]], dtype=torch.float64
    )
    scaling = torch.diag(torch.tensor([scale, scale, 1.0], dtype=torch.float64))
    shear_y = torch.tensor([[1, 0, 0], [-math.tan(sy), 1, 0], [0, 0, 1]], dtype=torch.float64)
    shear_x = torch.tensor([[1, -math.tan(sx), 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    cx, cy = center
    return (
        translation(*translate) @ translation(cx, cy) @ rotation @ scaling @ shear_y @ shear_x @ translation(-cx, -cy)
    )


def _warp(pixels: Tensor, inverse: Tensor, mode: str) -> Tensor:
    """Sample ``pixels`` [C, H, W] at ``inverse`` · (x + 0.5, y + 0.5) for every output pixel (zeros outside)."""
    height, width = pixels.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).double() @ inverse.T
    # grid_sample with align_corners=False puts -1 and +1 on the outer pixel edges: u = 2x / W - 1.
    grid = torch.stack([2 * points[..., 0] / width - 1, 2 * points[..., 1] / height - 1], dim=-1)
    return F.grid_sample(
        pixels[None], grid[None].to(pixels.dtype), mode=mode, padding_mode="zeros", align_corners=False
    )[0]


def affine(
    image: Tensor,
    target: dict,
    angle: float,
    translate: tuple[float, float],
    scale: float,
    shear: tuple[float, float],
    *,
    fill: float = 0.0,
    min_area_fraction: float = MIN_AREA_FRACTION,
) -> Sample:
    """Rotate by ``angle`` degrees (clockwise on screen), scale by ``scale``, shear by ``shear`` = (sx, sy)
    degrees about the image centre, then shift by ``translate`` = (tx, ty) pixels (module docstring). The
    image is sampled bilinearly (``fill`` where no input pixel lands), masks by nearest; a box becomes the
    enclosing box of its transformed corners, clipped and dropped by the module's rule. Same parameters and
    result as ``torchvision.transforms.v2.functional.affine`` with bilinear interpolation."""
    image, target = check_sample(image, target, "affine")
    if scale <= 0:
        raise ValueError(f"affine: expected scale > 0, got {scale!r}")
    height, width = image.shape[-2:]
    matrix = affine_matrix(angle, translate, scale, shear, center=(width / 2, height / 2))
    inverse = torch.linalg.inv(matrix)
    warped = _warp(image, inverse, "bilinear")
    if fill:  # a warped ones-channel says how much of each output pixel had input under it (torchvision's rule)
        coverage = _warp(torch.ones_like(image[:1]), inverse, "bilinear")
        warped = (warped - fill) * coverage + fill
    boxes = target["boxes"].double()
    corners = boxes[:, [[0, 1], [2, 1], [2, 3], [0, 3]]]  # (N, 4 corners, xy)
    corners = corners @ matrix[:2, :2].T + matrix[:2, 2]
    moved = torch.cat([corners.amin(dim=1), corners.amax(dim=1)], dim=1).to(target["boxes"].dtype)
    if "masks" in target:
        masks = target["masks"]
        target = {**target, "masks": _warp(masks.float(), inverse, "nearest").round().to(masks.dtype)}
    return warped, _keep_visible(target, moved, (height, width), min_area_fraction)


def mosaic(
    samples: Sequence[Sample],
    center: tuple[int, int],
    size: tuple[int, int] | None = None,
    *,
    fill: float = 0.0,
    min_area_fraction: float = MIN_AREA_FRACTION,
) -> Sample:
    """Four samples on one canvas of ``size`` (H, W; default the first image's), around ``center`` = (cx, cy)
    pixels: each resized to (⌊H/2⌋, ⌊W/2⌋) and placed with its bottom-right, bottom-left, top-right and top-left
    corner (in that order: top-left, top-right, bottom-left, bottom-right quadrant) at the centre; the rest is
    ``fill``. Boxes scale with the resize, shift with the placement and are clipped and dropped by the
    module's rule; labels, and masks where every sample has them, follow."""
    samples = _check_four(samples, "mosaic")
    first = samples[0][0]
    height, width = tuple(first.shape[-2:]) if size is None else (int(size[0]), int(size[1]))
    cx, cy = int(center[0]), int(center[1])
    if not (0 <= cx <= width and 0 <= cy <= height):
        raise ValueError(f"mosaic: expected a centre (cx, cy) inside the {height}×{width} canvas, got {center!r}")
    with_masks = [("masks" in target) for _, target in samples]
    if any(with_masks) and not all(with_masks):
        raise ValueError(f"mosaic: either every sample has masks or none; samples with masks: {with_masks}")
    half = (height // 2, width // 2)
    canvas = first.new_full((first.shape[0], height, width), fill)
    parts = []
    for quadrant, (image, target) in enumerate(samples):
        x0 = cx - half[1] if quadrant % 2 == 0 else cx  # left column: its right edge at the centre
        y0 = cy - half[0] if quadrant < 2 else cy  # top row: its bottom edge at the centre
        resized = F.interpolate(image[None], size=half, mode="bilinear", align_corners=False, antialias=True)[0]
        top, left = max(y0, 0), max(x0, 0)  # the visible part of the placed image, on the canvas
        bottom, right = min(y0 + half[0], height), min(x0 + half[1], width)
        canvas[:, top:bottom, left:right] = resized[:, top - y0 : bottom - y0, left - x0 : right - x0]
        factor = torch.tensor([half[1] / image.shape[-1], half[0] / image.shape[-2]] * 2)
        moved = target["boxes"] * factor + torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
        part = {"boxes": target["boxes"], "labels": target["labels"]}
        if "masks" in target:
            masks = resize_masks(target["masks"], half)
            part["masks"] = masks.new_zeros(len(masks), height, width)
            part["masks"][:, top:bottom, left:right] = masks[:, top - y0 : bottom - y0, left - x0 : right - x0]
        parts.append(_keep_visible(part, moved, (height, width), min_area_fraction))
    merged = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
    return canvas, merged


def _check_four(samples: object, where: str) -> list[Sample]:
    if not isinstance(samples, Sequence) or len(samples) != 4:
        got = f"{len(samples)} samples" if isinstance(samples, Sequence) else type(samples).__name__
        raise ValueError(f"{where}: expected 4 (image, target) samples, got {got}")
    for index, sample in enumerate(samples):
        if not isinstance(sample, (tuple, list)) or len(sample) != 2:
            raise ValueError(f"{where}: sample {index}: expected an (image, target) pair, got {type(sample).__name__}")
    return [check_sample(image, target, where, index) for index, (image, target) in enumerate(samples)]


# ---------------------------------------------------------------------------------------------------- random


class RandomHorizontalFlip:
    """:func:`horizontal_flip` with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = _check_probability("RandomHorizontalFlip: p", p)

    def __call__(self, image: Tensor, target: dict, generator: torch.Generator | int | None = None) -> Sample:
        generator = _generator(generator)
        if float(torch.rand((), generator=generator)) < self.p:
            return horizontal_flip(image, target)
        return check_sample(image, target, "RandomHorizontalFlip")


class RandomResizedCrop:
    """:func:`resized_crop` of a random window resized back to the image's size (or ``size``): torchvision's
    ``RandomResizedCrop.get_params``: up to 10 tries of an area fraction in ``scale`` and an aspect ratio w/h
    log-uniform in ``ratio``, else the largest centred window of an aspect ratio within ``ratio``."""

    def __init__(
        self,
        scale: tuple[float, float] = (0.3, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        size: tuple[int, int] | None = None,
        *,
        min_area_fraction: float = MIN_AREA_FRACTION,
    ) -> None:
        self.scale = _check_range("RandomResizedCrop: scale", scale, 1e-6, 1.0)
        self.ratio = _check_range("RandomResizedCrop: ratio", ratio, 1e-6, math.inf)
        self.size = size
        self.min_area_fraction = _check_number("RandomResizedCrop: min_area_fraction", min_area_fraction, 0, 1)

    def get_params(self, height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, int]:
        """(top, left, crop height, crop width)."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * _uniform(generator, *self.scale)
            aspect = math.exp(_uniform(generator, *log_ratio))
            w, h = round(math.sqrt(target_area * aspect)), round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (), generator=generator))
                left = int(torch.randint(0, width - w + 1, (), generator=generator))
                return top, left, h, w
        aspect = width / height
        if aspect < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif aspect > self.ratio[1]:
            w, h = round(height * self.ratio[1]), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, image: Tensor, target: dict, generator: torch.Generator | int | None = None) -> Sample:
        image, target = check_sample(image, target, "RandomResizedCrop")
        height, width = image.shape[-2:]
        window = self.get_params(height, width, _generator(generator))
        size = (height, width) if self.size is None else self.size
        return resized_crop(image, target, *window, size, min_area_fraction=self.min_area_fraction)


class RandomAffine:
    """:func:`affine` with an angle in U(−``degrees``, ``degrees``), a shift of U(−``translate``, ``translate``)
    times the image's width and height, a scale in U(``scale``) and shears sx, sy each in U(−``shear``,
    ``shear``) degrees (YOLOv5's random perspective draws these the same way)."""

    def __init__(
        self,
        degrees: float = 10.0,
        translate: float = 0.1,
        scale: tuple[float, float] = (0.75, 1.25),
        shear: float = 0.0,
        *,
        fill: float = 0.0,
        min_area_fraction: float = MIN_AREA_FRACTION,
    ) -> None:
        self.degrees = _check_number("RandomAffine: degrees", degrees, 0, 180)
        self.translate = _check_number("RandomAffine: translate", translate, 0, 1)
        self.scale = _check_range("RandomAffine: scale", scale, 1e-6, math.inf)
        self.shear = _check_number("RandomAffine: shear", shear, 0, 60)
        self.fill = fill
        self.min_area_fraction = _check_number("RandomAffine: min_area_fraction", min_area_fraction, 0, 1)

    def get_params(
        self, height: int, width: int, generator: torch.Generator
    ) -> tuple[float, tuple[float, float], float, tuple[float, float]]:
        """(angle, (tx, ty), scale, (sx, sy)), :func:`affine`'s arguments."""
        angle = _uniform(generator, -self.degrees, self.degrees)
        shift = (
            _uniform(generator, -1, 1) * self.translate * width,
            _uniform(generator, -1, 1) * self.translate * height,
        )
        scale = _uniform(generator, *self.scale)
        shear = (_uniform(generator, -self.shear, self.shear), _uniform(generator, -self.shear, self.shear))
        return angle, shift, scale, shear

    def __call__(self, image: Tensor, target: dict, generator: torch.Generator | int | None = None) -> Sample:
        image, target = check_sample(image, target, "RandomAffine")
        params = self.get_params(*image.shape[-2:], _generator(generator))
        return affine(image, target, *params, fill=self.fill, min_area_fraction=self.min_area_fraction)


class Mosaic:
    """:func:`mosaic` of four samples around a centre drawn uniformly in ``center_range`` times the canvas
    width and height (YOLOv4 / Ultralytics: [0.25, 0.75], so that each sample shows at least half its width
    and height)."""

    def __init__(
        self,
        center_range: tuple[float, float] = (0.25, 0.75),
        size: tuple[int, int] | None = None,
        *,
        fill: float = 0.0,
        min_area_fraction: float = MIN_AREA_FRACTION,
    ) -> None:
        self.center_range = _check_range("Mosaic: center_range", center_range, 0.0, 1.0)
        self.size = size
        self.fill = fill
        self.min_area_fraction = _check_number("Mosaic: min_area_fraction", min_area_fraction, 0, 1)

    def __call__(self, samples: Sequence[Sample], generator: torch.Generator | int | None = None) -> Sample:
        generator = _generator(generator)
        samples = _check_four(samples, "Mosaic")
        height, width = samples[0][0].shape[-2:] if self.size is None else self.size
        cx = round(_uniform(generator, *self.center_range) * width)
        cy = round(_uniform(generator, *self.center_range) * height)
        return mosaic(samples, (cx, cy), (height, width), fill=self.fill, min_area_fraction=self.min_area_fraction)


# ---------------------------------------------------------------------------------------------------- pipeline


@dataclasses.dataclass
class DetectionAugment:
    """The ``data.augment`` options of the detection data (all off by default): the probability of each
    transform (0 = off) and its parameters; applied in the order mosaic → affine → resized crop → flip."""

    hflip: float = 0.0
    random_resized_crop: float = 0.0
    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    affine: float = 0.0
    affine_degrees: float = 10.0
    affine_translate: float = 0.1
    affine_scale: tuple[float, float] = (0.75, 1.25)
    affine_shear: float = 0.0
    mosaic: float = 0.0
    mosaic_center: tuple[float, float] = (0.25, 0.75)
    min_area_fraction: float = MIN_AREA_FRACTION

    def __post_init__(self) -> None:
        for name in ("hflip", "random_resized_crop", "affine", "mosaic"):
            _check_probability(f"data.augment.{name}", getattr(self, name))
        fraction = self.min_area_fraction
        try:  # the transforms check their own parameters
            self.transforms = {
                "mosaic": Mosaic(self.mosaic_center, min_area_fraction=fraction),
                "affine": RandomAffine(
                    self.affine_degrees,
                    self.affine_translate,
                    self.affine_scale,
                    self.affine_shear,
                    min_area_fraction=fraction,
                ),
                "crop": RandomResizedCrop(self.crop_scale, self.crop_ratio, min_area_fraction=fraction),
                "flip": RandomHorizontalFlip(1.0),
            }
        except ValueError as error:
            raise ValueError(f"data.augment: {error}") from None

    @classmethod
    def from_config(cls, augment: Mapping | None) -> DetectionAugment:
        """From the ``data.augment`` mapping; a ValueError naming the keys it does not know."""
        augment = {} if augment is None else augment
        keys = [field.name for field in dataclasses.fields(cls)]
        if not isinstance(augment, Mapping):
            raise ValueError(f"data.augment must be a mapping of some of {keys}, got {augment!r}")
        unknown = sorted(set(augment) - set(keys))
        if unknown:
            raise ValueError(f"data.augment has unknown keys {unknown}; expected some of {keys}")
        return cls(
            **{k: tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v for k, v in augment.items()}
        )

    @property
    def enabled(self) -> bool:
        return any(p > 0 for p in (self.hflip, self.random_resized_crop, self.affine, self.mosaic))

    def __call__(self, dataset: Dataset, index: int, generator: torch.Generator) -> Sample:
        """Sample ``index`` of ``dataset``, augmented; a mosaic takes three more samples drawn at random."""
        transforms = self.transforms
        sample = dataset[index]

        def happens(p: float) -> bool:
            return p > 0 and float(torch.rand((), generator=generator)) < p

        if happens(self.mosaic):
            others = torch.randint(len(dataset), (3,), generator=generator).tolist()
            sample = transforms["mosaic"]([sample, *(dataset[i] for i in others)], generator)
        if happens(self.affine):
            sample = transforms["affine"](*sample, generator)
        if happens(self.random_resized_crop):
            sample = transforms["crop"](*sample, generator)
        if happens(self.hflip):
            sample = transforms["flip"](*sample, generator)
        return sample


class EpochKeyedSampler(EpochSampler):
    """An :class:`EpochSampler` that yields ``(index, epoch)``, so that an :class:`AugmentedDetection` seeds
    each sample from its epoch as well as its index, whichever worker loads it."""

    def __iter__(self):
        epoch = self.epoch
        return ((index, epoch) for index in super().__iter__())


class AugmentedDetection(Dataset):
    """``dataset`` with ``augment`` applied; item ``(index, epoch)`` (or ``index``, epoch 0) is augmented with
    a generator seeded by (``seed``, epoch, index)."""

    def __init__(self, dataset: Dataset, augment: DetectionAugment, seed: int = 0) -> None:
        self.dataset, self.augment, self.seed = dataset, augment, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> Sample:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        seed = ((self.seed * 1_000_003 + epoch) * 1_000_003 + index) % 2**63
        return self.augment(self.dataset, index, torch.Generator().manual_seed(seed))
