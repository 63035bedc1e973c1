"""The LightningDataModules every dataset plugs into.

A subclass sets ``num_classes``, ``in_chans`` and ``image_size`` and implements ``build_datasets()``,
returning ``(train_set, val_set)``. Items are ``(image, target)`` with the image a float tensor (C, H, W),
already normalised. For classification the target is an int class index and batches are
``(images (N, C, H, W), labels (N,))``; detection and segmentation modules set their own ``collate_fn``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["ClassificationDataModule", "ImageDataModule"]


class ImageDataModule(pl.LightningDataModule):
    """Shared loader logic: seeded shuffling of the train set, ``collate_fn`` chosen by the subclass."""

    num_classes: int
    in_chans: int = 3
    image_size: int
    collate_fn: Callable | None = None

    def __init__(self, batch_size: int = 128, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"data.batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"data.num_workers must be an int >= 0, got {num_workers!r}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set, self.val_set = self.build_datasets()

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=generator,
            collate_fn=type(self).collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.val_set, shuffle=False)


class ClassificationDataModule(ImageDataModule):
    """Items ``(image, class index)``; batches ``(images (N, C, H, W), labels (N,))``."""
