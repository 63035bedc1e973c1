"""Any classification dataset stored as one folder of images per class (the ImageNet layout):

    root/train/<class>/**/*.{jpg,jpeg,png,bmp,webp}
    root/val/<class>/**/*.{jpg,jpeg,png,bmp,webp}

Class indices are the positions of train's class folders in sorted order, as in torchvision's
``ImageFolder``; val may hold a subset of those classes and uses train's indices. Entries whose
name starts with "." are ignored. The folders are scanned and checked when the datamodule is
built, so that ``num_classes`` is known before the trainer builds the model (a missing folder is a
FileNotFoundError); images are decoded with PIL and converted to RGB when they are loaded, so
``mean`` and ``std`` hold three values each.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from zoo.constants import IMAGENET_MEAN, IMAGENET_STD
from zoo.data.base import ClassificationDataModule, read_image
from zoo.data.transforms import build_transforms, resolve_augment

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "ImageFileDataset",
    "ImageFolderDataModule",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
LAYOUT = "root/train/<class>/*.jpg and root/val/<class>/*.jpg"


def _class_folders(split: Path) -> list[str]:
    """Sorted names of the class folders in ``split``."""
    if not split.is_dir():
        raise FileNotFoundError(f"ImageFolder: {split} is not a directory; expected {LAYOUT}")
    classes = sorted(entry.name for entry in split.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise ValueError(f"ImageFolder: no class folders in {split}; expected {LAYOUT}")
    return classes


def _image_files(folder: Path) -> list[str]:
    """Sorted paths of the image files anywhere under ``folder``."""
    paths = []
    for directory, subdirectories, files in os.walk(folder, followlinks=True):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        paths += [
            os.path.join(directory, name)
            for name in files
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
        ]
    if not paths:
        raise ValueError(f"ImageFolder: class folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return sorted(paths)


def _samples(split: Path, classes: Sequence[str], class_to_index: Mapping[str, int]) -> list[tuple[str, int]]:
    return [(path, class_to_index[name]) for name in classes for path in _image_files(split / name)]


class ImageFileDataset(Dataset):
    """``samples`` of ``(image path, label)``; items are ``(transform(RGB image), label)``."""

    def __init__(self, samples: Sequence[tuple[str, int]], transform: Callable) -> None:
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return self.transform(read_image(path, "ImageFolder").convert("RGB")), label


class ImageFolderDataModule(ClassificationDataModule):
    """Train on ``root/train``, validate on ``root/val`` (module docstring).

    ``augment`` overrides `build_transforms` keyword arguments; by default training uses
    RandomResizedCrop and a horizontal flip, and eval resizes to ⌊image_size / 0.875⌋ and
    centre-crops ``image_size``.
    """

    in_chans = 3

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int = 224,
        batch_size: int = 64,
        num_workers: int = 2,
        seed: int = 0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        augment: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        options = resolve_augment({}, augment)
        self.train_transform = build_transforms(True, image_size, mean, std, self.in_chans, **options)
        self.val_transform = build_transforms(False, image_size, mean, std, self.in_chans, **options)
        self.image_size = image_size

        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"ImageFolder: data.root {str(root)!r} is not a directory; expected {LAYOUT}")
        self.classes = _class_folders(root / "train")
        class_to_index = {name: index for index, name in enumerate(self.classes)}
        val_classes = _class_folders(root / "val")
        unknown = [name for name in val_classes if name not in class_to_index]
        if unknown:
            raise ValueError(f"ImageFolder: val classes {unknown} in {root / 'val'} have no folder in {root / 'train'}")
        self.num_classes = len(self.classes)
        self.train_samples = _samples(root / "train", self.classes, class_to_index)
        self.val_samples = _samples(root / "val", val_classes, class_to_index)

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        return (
            ImageFileDataset(self.train_samples, self.train_transform),
            ImageFileDataset(self.val_samples, self.val_transform),
        )
