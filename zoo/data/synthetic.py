"""Built-in synthetic data: noisy images of ten shapes, rendered in code from a seed.

No files and no download: every image is drawn from a `torch.Generator`, so the same seed gives the
same dataset on every machine. A scene holds one or more shapes (disk, square, triangle, ring, plus,
diamond, bar, frame, half-disk, dumbbell), each at a random position, size, small rotation and
colour, on a random colour gradient with Gaussian pixel noise. The class of a shape is its form
alone: colour, size and position are nuisances, so an untrained model is at chance (10 %).

Each object is rendered with 2×2 supersampling, which gives per-pixel coverage in [0, 1]: the
classification task uses the label of a scene's single object; detection uses the boxes of the
pixels with coverage ≥ 0.5; segmentation uses those pixels as masks and marks partly covered
border pixels as ``IGNORE_INDEX``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from zoo.constants import IGNORE_INDEX, SYNTHETIC_MEAN, SYNTHETIC_STD
from zoo.data.base import ClassificationDataModule, ImageDataModule

__all__ = [
    "IGNORE_INDEX",
    "SHAPE_NAMES",
    "Scenes",
    "SyntheticClassification",
    "SyntheticDataModule",
    "SyntheticScenesDataModule",
    "render_scenes",
    "render_varied_scenes",
]

SHAPE_NAMES = (
    "disk", "square", "triangle", "ring", "plus",
    "diamond", "bar", "frame", "half_disk", "dumbbell",
)  # fmt: skip
MEAN, STD = SYNTHETIC_MEAN, SYNTHETIC_STD


def _shape_membership(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(S, ...) booleans: is local point (u, v) inside shape s? Shapes span about [-1, 1]²."""
    radius = torch.sqrt(u * u + v * v)
    au, av = u.abs(), v.abs()
    chebyshev = torch.maximum(au, av)
    return torch.stack(
        [
            radius <= 1.0,  # disk
            chebyshev <= 0.8,  # square
            (v <= 0.75) & (au <= 0.95 * (v + 0.95) / 1.7),  # triangle, apex up
            (radius <= 1.0) & (radius >= 0.55),  # ring
            ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95)),  # plus
            au + av <= 1.0,  # diamond
            (au <= 0.95) & (av <= 0.35),  # bar
            (chebyshev <= 0.85) & (chebyshev >= 0.5),  # frame
            (radius <= 1.0) & (v >= 0.0),  # half disk
            ((u - 0.55) ** 2 + v * v <= 0.16) | ((u + 0.55) ** 2 + v * v <= 0.16) | ((au <= 0.55) & (av <= 0.12)),
        ]
    )


@dataclass
class Scenes:
    """A rendered batch: ``images`` (N, 3, H, W) in [0, 1]; per object ``labels`` (N, K),
    ``coverage`` (N, K, H, W) of the visible part (later objects occlude earlier ones) and
    ``boxes`` (N, K, 4) xyxy in pixels around coverage ≥ 0.5."""

    images: torch.Tensor
    labels: torch.Tensor
    coverage: torch.Tensor
    boxes: torch.Tensor


def render_scenes(
    num_images: int,
    image_size: int = 32,
    objects_per_image: int = 1,
    *,
    generator: torch.Generator,
    noise_std: float = 0.1,
    max_rotation_deg: float = 20.0,
) -> Scenes:
    """Draw ``num_images`` scenes of ``objects_per_image`` shapes each (see module docstring)."""
    n, k, size = num_images, objects_per_image, image_size
    if n < 0 or k < 1 or size < 8:
        raise ValueError(f"need num_images >= 0, objects_per_image >= 1, image_size >= 8; got {n}, {k}, {size}")

    def uniform(*shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator)

    labels = torch.randint(len(SHAPE_NAMES), (n, k), generator=generator)
    # One object fills a good part of the image; several objects are smaller.
    scale = 1.0 if k == 1 else 0.6
    radius = uniform(n, k, low=0.24 * size * scale, high=0.42 * size * scale)
    cx = radius + uniform(n, k) * (size - 2 * radius)
    cy = radius + uniform(n, k) * (size - 2 * radius)
    theta = uniform(n, k, low=-1.0, high=1.0) * math.radians(max_rotation_deg)

    # 2×2 supersampled pixel centres → coverage by averaging.
    sub = (torch.arange(2 * size, dtype=torch.float32) + 0.5) / 2
    ys, xs = torch.meshgrid(sub, sub, indexing="ij")
    dx = (xs - cx[..., None, None]) / radius[..., None, None]
    dy = (ys - cy[..., None, None]) / radius[..., None, None]
    cos, sin = torch.cos(theta)[..., None, None], torch.sin(theta)[..., None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    inside = _shape_membership(u, v)  # (S, N, K, 2H, 2W)
    inside = torch.gather(inside, 0, labels[None, ..., None, None].expand(1, n, k, 2 * size, 2 * size))[0]
    coverage = torch.nn.functional.avg_pool2d(inside.float().view(n * k, 1, 2 * size, 2 * size), 2)
    coverage = coverage.view(n, k, size, size)

    # Background: a random colour with a linear gradient; objects: colours far from it.
    base = uniform(n, 3, 1, 1, low=0.15, high=0.85)
    ramp = torch.linspace(-0.5, 0.5, size)
    gradient = uniform(n, 3, 1, 1, low=-0.2, high=0.2) * ramp.view(1, 1, 1, size)
    gradient = gradient + uniform(n, 3, 1, 1, low=-0.2, high=0.2) * ramp.view(1, 1, size, 1)
    images = (base + gradient).expand(n, 3, size, size).clone()
    direction = torch.nn.functional.normalize(torch.randn(n, k, 3, generator=generator), dim=-1)
    colour = base.view(n, 1, 3) + direction * uniform(n, k, 1, low=0.45, high=0.7)
    colour = colour.clamp(0.0, 1.0)
    visible = coverage.clone()
    for j in range(k):  # painter's order: object j covers what lies beneath it
        alpha = coverage[:, j : j + 1]
        images = images * (1 - alpha) + colour[:, j, :, None, None] * alpha
        visible[:, :j] *= 1 - coverage[:, j : j + 1]
    images = (images + noise_std * torch.randn(images.shape, generator=generator)).clamp(0.0, 1.0)
    return Scenes(images=images, labels=labels, coverage=visible, boxes=_boxes_from_coverage(visible))


def render_varied_scenes(
    num_samples: int, image_size: int, max_objects: int, seed: int
) -> Iterator[tuple[torch.Tensor, Scenes]]:
    """Scenes of 1..``max_objects`` shapes, the count drawn per image from ``seed``, rendered in chunks of
    bounded memory; yields ``(indices, scenes)``: which of the ``num_samples`` images each chunk fills."""
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    if not isinstance(max_objects, int) or max_objects < 1:
        raise ValueError(f"max_objects must be a positive int, got {max_objects!r}")
    generator = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, max_objects + 1, (num_samples,), generator=generator)
    chunk = max(1, 2**21 // (image_size * image_size * max_objects))
    for k in range(1, max_objects + 1):
        indices = (counts == k).nonzero().flatten()
        for start in range(0, len(indices), chunk):
            part = indices[start : start + chunk]
            yield part, render_scenes(len(part), image_size, k, generator=generator)


def _boxes_from_coverage(coverage: torch.Tensor) -> torch.Tensor:
    """xyxy boxes (pixel edges) around coverage ≥ 0.5; all zeros for an object that is not visible."""
    solid = coverage >= 0.5
    cols, rows = solid.any(dim=-2), solid.any(dim=-1)
    size_x, size_y = cols.shape[-1], rows.shape[-1]
    ix = torch.arange(size_x).expand_as(cols)
    iy = torch.arange(size_y).expand_as(rows)
    x0 = torch.where(cols, ix, size_x).amin(-1)
    x1 = torch.where(cols, ix + 1, 0).amax(-1)
    y0 = torch.where(rows, iy, size_y).amin(-1)
    y1 = torch.where(rows, iy + 1, 0).amax(-1)
    boxes = torch.stack([x0, y0, x1, y1], dim=-1).float()
    return torch.where(solid.flatten(-2).any(-1, keepdim=True), boxes, torch.zeros_like(boxes))


class SyntheticClassification(Dataset):
    """``num_samples`` one-shape scenes, rendered once at construction and kept as uint8 (so 299 px
    sets fit in memory); items are ``(normalised float image (3, H, W), label)``. Different ``seed``s
    give different sets."""

    def __init__(self, num_samples: int, image_size: int = 32, seed: int = 0) -> None:
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        generator = torch.Generator().manual_seed(seed)
        chunk = max(1, 2**20 // (image_size * image_size))  # bounds the renderer's working memory
        images, labels = [], []
        for start in range(0, num_samples, chunk):
            scenes = render_scenes(min(chunk, num_samples - start), image_size, generator=generator)
            images.append((scenes.images * 255).round().to(torch.uint8))
            labels.append(scenes.labels[:, 0])
        self.pixels = torch.cat(images)
        self.labels = torch.cat(labels)
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    @property
    def images(self) -> torch.Tensor:
        """All images, normalised, as one float tensor (N, 3, H, W)."""
        return (self.pixels.float() / 255 - self.mean) / self.std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return (self.pixels[index].float() / 255 - self.mean) / self.std, int(self.labels[index])


class SyntheticDataModule(ClassificationDataModule):
    """The default data: ``train_size`` / ``val_size`` synthetic shape images of ``image_size``²."""

    num_classes = len(SHAPE_NAMES)
    in_chans = 3

    def __init__(
        self,
        train_size: int = 6000,
        val_size: int = 1000,
        image_size: int = 32,
        batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        if not isinstance(image_size, int) or image_size < 8:
            raise ValueError(f"data.image_size must be an int >= 8, got {image_size!r}")
        self.train_size, self.val_size, self.image_size = train_size, val_size, image_size

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        # Train and val come from different streams of the same seed.
        train = SyntheticClassification(self.train_size, self.image_size, seed=2 * self.seed)
        val = SyntheticClassification(self.val_size, self.image_size, seed=2 * self.seed + 1)
        return train, val


class SyntheticScenesDataModule(ImageDataModule):
    """Train and val splits of a multi-object scenes dataset (``scenes_dataset``: detection or segmentation),
    rendered from two streams of one seed; background + ten shapes, so ``num_classes`` = 11."""

    num_classes = len(SHAPE_NAMES) + 1
    in_chans = 3
    scenes_dataset: type[Dataset]
    min_image_size: int = 16

    def __init__(
        self,
        train_size: int = 2000,
        val_size: int = 200,
        image_size: int = 64,
        max_objects: int = 3,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        if not isinstance(image_size, int) or image_size < self.min_image_size:
            raise ValueError(f"data.image_size must be an int >= {self.min_image_size}, got {image_size!r}")
        self.train_size, self.val_size, self.image_size = train_size, val_size, image_size
        self.max_objects = max_objects

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        train = self.scenes_dataset(self.train_size, self.image_size, self.max_objects, seed=2 * self.seed)
        val = self.scenes_dataset(self.val_size, self.image_size, self.max_objects, seed=2 * self.seed + 1)
        return train, val
