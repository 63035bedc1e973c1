"""The LightningDataModules every dataset plugs into.

A subclass sets ``num_classes``, ``in_chans`` and ``image_size`` and implements ``build_datasets()``,
returning ``(train_set, val_set)``. Items are ``(image, target)`` with the image a float tensor (C, H, W),
already normalised. For classification the target is an int class index and batches are
``(images (N, C, H, W), labels (N,))``; detection and segmentation modules set their own ``collate_fn``.

`read_image` is the one image-file reader of the loaders, so that a missing or damaged file is reported
the same way whichever dataset lists it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from zoo.data.resumable import EpochSampler, ResumableDataLoader

__all__ = ["ClassificationDataModule", "ImageDataModule", "read_image"]


def read_image(path: str | Path, dataset: str) -> Image.Image:
    """The fully decoded image in ``path``: FileNotFoundError if it is missing, ValueError naming it if PIL
    cannot decode it (a corrupt or truncated file). ``dataset`` starts the message ("COCO", "VOC", ...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{dataset}: image file {path} does not exist")
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not later inside a transform
            return image
    # PIL reports damaged files with any of these, depending on the format and where the damage lies.
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ValueError(
            f"{dataset}: cannot decode image {path}: the file is corrupt, truncated or not an image "
            f"({type(err).__name__}: {err})"
        ) from err


class ImageDataModule(pl.LightningDataModule):
    """Shared loader logic: resumable seeded shuffling of the train set (split across DDP processes),
    ``collate_fn`` chosen by the subclass."""

    num_classes: int
    in_chans: int = 3
    image_size: int
    collate_fn: Callable | None = None
    train_sampler_type: type[EpochSampler] = EpochSampler  # augmented detection data keys samples by epoch too

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

    def _loader(
        self,
        dataset: Dataset,
        shuffle: bool,
        rank: int = 0,
        world_size: int = 1,
        sampler_type: type[EpochSampler] = EpochSampler,
    ) -> DataLoader:
        sampler = sampler_type(len(dataset), shuffle=shuffle, seed=self.seed, rank=rank, world_size=world_size)
        return ResumableDataLoader(
            dataset,
            sampler=sampler,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=type(self).collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled per epoch from ``seed``; under DDP each process takes its share (``EpochSampler``), with
        ``data.batch_size`` samples per process and step."""
        self.setup()
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return self._loader(
            self.train_set, shuffle=True, rank=rank, world_size=world_size, sampler_type=self.train_sampler_type
        )

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.val_set, shuffle=False)


class ClassificationDataModule(ImageDataModule):
    """Items ``(image, class index)``; batches ``(images (N, C, H, W), labels (N,))``."""
