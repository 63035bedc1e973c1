"""Datasets as LightningDataModules: built-in synthetic shapes (the default) and real formats read
from local files (CIFAR-10 python batches, ImageFolder trees)."""

from zoo.data.base import ClassificationDataModule
from zoo.data.cifar10 import CIFAR10DataModule
from zoo.data.imagefolder import ImageFolderDataModule
from zoo.data.synthetic import SyntheticDataModule, render_scenes

__all__ = [
    "CIFAR10DataModule",
    "ClassificationDataModule",
    "ImageFolderDataModule",
    "SyntheticDataModule",
    "render_scenes",
]
