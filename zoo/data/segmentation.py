"""Segmentation data: per-pixel class masks, from the built-in synthetic scenes or a VOC-layout folder.

An item is ``(image, mask)``: a normalised float image (3, H, W) and an int64 mask (H, W) of class indices,
0 = background, with ``IGNORE_INDEX`` (255) on pixels that must not count (object borders); batches stack
into ``(images (N, 3, H, W), masks (N, H, W))``.

Synthetic masks come from the renderer's 2×2-supersampled coverage: a pixel fully covered by a visible
shape takes its class (label + 1), a pixel no shape touches is background, and a partly covered border
pixel is ignored — so ``ignore_index`` is exercised by the built-in data.

VOC layout (PASCAL VOC 2012)::

    root/JPEGImages/<id>.jpg
    root/SegmentationClass/<id>.png        palette PNG: pixel value = class index, 255 = ignore
    root/ImageSets/Segmentation/<split>.txt one <id> per line

A file the layout needs and that is missing is a FileNotFoundError naming it; a mask whose size differs
from its image's, or that is not a palette or greyscale PNG, is a ValueError naming both files.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from zoo.constants import IMAGENET_MEAN, IMAGENET_STD
from zoo.data.base import ImageDataModule, read_image
from zoo.data.synthetic import IGNORE_INDEX, MEAN, STD, SyntheticScenesDataModule, render_varied_scenes
from zoo.data.transforms import check_int, check_mean_std

__all__ = [
    "IGNORE_INDEX",
    "SegmentationDataModule",
    "SyntheticSegmentation",
    "SyntheticSegmentationDataModule",
    "VOCSegmentation",
    "VOCSegmentationDataModule",
    "check_mask",
    "masks_from_coverage",
]


def check_mask(mask: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX, where: str = "mask") -> None:
    """ValueError unless every value of ``mask`` is a class index below ``num_classes`` or ``ignore_index``."""
    values = mask.unique()
    bad = values[(values != ignore_index) & ((values < 0) | (values >= num_classes))]
    if bad.numel():
        raise ValueError(
            f"{where}: class values must lie in 0..{num_classes - 1} (or {ignore_index} = ignore), found {bad.tolist()}"
        )


def masks_from_coverage(labels: Tensor, coverage: Tensor) -> Tensor:
    """Masks (N, H, W) from per-object ``labels`` (N, K) in 0..C-1 and visible ``coverage`` (N, K, H, W)."""
    best, index = coverage.max(dim=1)
    classes = torch.gather(labels, 1, index.flatten(1)).view_as(index) + 1
    mask = torch.full_like(classes, IGNORE_INDEX)
    mask[best >= 1.0] = classes[best >= 1.0]
    mask[coverage.sum(dim=1) <= 0.0] = 0
    return mask


class SegmentationDataModule(ImageDataModule):
    """Base for segmentation datasets: items ``(image, mask)``, default collate (stacking)."""

    ignore_index = IGNORE_INDEX


class SyntheticSegmentation(Dataset):
    """``num_samples`` scenes of 1..``max_objects`` shapes with their masks, rendered once from ``seed``."""

    def __init__(self, num_samples: int, image_size: int = 64, max_objects: int = 3, seed: int = 0) -> None:
        self.pixels = torch.empty(num_samples, 3, image_size, image_size, dtype=torch.uint8)
        self.masks = torch.empty(num_samples, image_size, image_size, dtype=torch.uint8)
        for indices, scenes in render_varied_scenes(num_samples, image_size, max_objects, seed):
            self.pixels[indices] = (scenes.images * 255).round().to(torch.uint8)
            self.masks[indices] = masks_from_coverage(scenes.labels, scenes.coverage).to(torch.uint8)
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = (self.pixels[index].float() / 255 - self.mean) / self.std
        return image, self.masks[index].long()


class SyntheticSegmentationDataModule(SyntheticScenesDataModule, SegmentationDataModule):
    """The built-in segmentation data: background + ten shape classes (``num_classes`` = 11)."""

    scenes_dataset = SyntheticSegmentation


class VOCSegmentation(Dataset):
    """A VOC-layout split; each image is scaled so its longer side is ``image_size`` and padded to a square
    (the mask with ``IGNORE_INDEX``, so padding never counts)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        image_size: int = 256,
        num_classes: int = 21,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        check_int("image_size", image_size, 1)
        check_mean_std(mean, std, 3)
        self.root = Path(root)
        split_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not split_file.is_file():
            raise FileNotFoundError(
                f"VOC: split list {split_file} does not exist; expected root/JPEGImages/<id>.jpg, "
                "root/SegmentationClass/<id>.png and root/ImageSets/Segmentation/<split>.txt"
            )
        self.ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
        if not self.ids:
            raise ValueError(f"VOC: split list {split_file} is empty")
        for image_id in self.ids:
            for path in (self._image_path(image_id), self._mask_path(image_id)):
                if not path.is_file():
                    raise FileNotFoundError(f"VOC: {split_file} lists {image_id!r} but {path} does not exist")
        self.image_size, self.num_classes = image_size, num_classes
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def _image_path(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def _mask_path(self, image_id: str) -> Path:
        return self.root / "SegmentationClass" / f"{image_id}.png"

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image_path, mask_path = self._image_path(self.ids[index]), self._mask_path(self.ids[index])
        image, mask_image = read_image(image_path, "VOC"), read_image(mask_path, "VOC")
        if mask_image.mode not in ("P", "L"):
            raise ValueError(f"VOC: mask {mask_path} has mode {mask_image.mode}; expected P or L (class indices)")
        if mask_image.size != image.size:
            raise ValueError(
                f"VOC: mask {mask_path} is {mask_image.size[0]}×{mask_image.size[1]} (width × height) but its "
                f"image {image_path} is {image.size[0]}×{image.size[1]}"
            )
        pixels = pil_to_tensor(image.convert("RGB")).float() / 255
        mask = pil_to_tensor(mask_image)[0].long()  # palette indices, not colours
        check_mask(mask, self.num_classes, where=f"VOC mask {mask_path}")
        height, width = mask.shape
        scale = self.image_size / max(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        pixels = F.interpolate(pixels[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
        mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest")[0, 0].long()
        pad = (0, self.image_size - size[1], 0, self.image_size - size[0])
        pixels = F.pad((pixels - self.mean) / self.std, pad)
        mask = F.pad(mask, pad, value=IGNORE_INDEX)
        return pixels, mask


class VOCSegmentationDataModule(SegmentationDataModule):
    """``data=voc``: train and val split lists of one VOC-layout root."""

    in_chans = 3

    def __init__(
        self,
        root: str,
        train_split: str = "train",
        val_split: str = "val",
        num_classes: int = 21,
        image_size: int = 256,
        batch_size: int = 8,
        num_workers: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        check_int("data.num_classes", num_classes, 2)
        check_int("data.image_size", image_size, 1)
        self.root, self.splits = root, (train_split, val_split)
        self.num_classes, self.image_size = num_classes, image_size

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        return tuple(VOCSegmentation(self.root, split, self.image_size, self.num_classes) for split in self.splits)
