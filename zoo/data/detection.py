"""Detection data: targets in torchvision's format, a collate function, and the built-in synthetic scenes.

An item is ``(image, target)``: a normalised float image (3, H, W) and
``{"boxes": FloatTensor[K, 4] xyxy in pixels, "labels": Int64Tensor[K]}`` with K ≥ 0. Labels start at 1:
0 is background (torchvision's convention), so a dataset of C categories has ``num_classes = C + 1``.
A batch is ``(images, targets)``: images stacked into (N, 3, H, W) when they share a size (a list
otherwise), targets a list of dicts.

The synthetic scenes come from the same renderer as the classification data (``render_scenes``): each
image holds 1 to ``max_objects`` shapes; an object hidden entirely by later ones is dropped, a partly hidden
one keeps the box of its visible pixels. With ``with_masks`` (instance segmentation: Mask R-CNN) a target
also has ``"masks": UInt8Tensor[K, H, W]``, each object's visible pixels (coverage >= 0.5, those its box
frames).

Training splits can be augmented (``data.augment``, :class:`~zoo.data.detection_transforms.DetectionAugment`:
flip, resized crop, affine, Mosaic, all off by default) with the boxes and masks moved along; validation never is.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch
from torch import Tensor
from torch.utils.data import Dataset

from zoo.data.base import ImageDataModule
from zoo.data.detection_transforms import AugmentedDetection, DetectionAugment, EpochKeyedSampler
from zoo.data.synthetic import MEAN, STD, SyntheticScenesDataModule, render_varied_scenes
from zoo.models.detection.targets import check_detection_target  # re-exported: the check lives with the detectors

__all__ = [
    "DetectionDataModule",
    "SyntheticDetection",
    "SyntheticDetectionDataModule",
    "check_detection_target",
    "detection_collate",
]


def detection_collate(batch: list[tuple[Tensor, dict]]) -> tuple[Tensor | list[Tensor], list[dict]]:
    """Stack same-size images into one tensor (a list when sizes differ); keep targets as a list."""
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    if all(image.shape == images[0].shape for image in images):
        return torch.stack(images), targets
    return images, targets


class DetectionDataModule(ImageDataModule):
    """Base for detection datasets: items ``(image, target dict)``, batches from :func:`detection_collate`;
    ``augment`` (set from ``data.augment`` by subclasses) augments the training split, never validation."""

    collate_fn = staticmethod(detection_collate)
    augment = DetectionAugment()  # off

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.augment.enabled and not isinstance(self.train_set, AugmentedDetection):
            self.train_set = AugmentedDetection(self.train_set, self.augment, seed=self.seed)
            self.train_sampler_type = EpochKeyedSampler


class SyntheticDetection(Dataset):
    """``num_samples`` scenes of 1..``max_objects`` shapes (labels 1..10), rendered once from ``seed``; with
    ``with_masks``, each target also holds its objects' masks."""

    def __init__(
        self, num_samples: int, image_size: int = 128, max_objects: int = 3, seed: int = 0, with_masks: bool = False
    ) -> None:
        self.pixels = torch.empty(num_samples, 3, image_size, image_size, dtype=torch.uint8)
        self.targets: list[dict] = [{} for _ in range(num_samples)]
        for indices, scenes in render_varied_scenes(num_samples, image_size, max_objects, seed):
            self.pixels[indices] = (scenes.images * 255).round().to(torch.uint8)
            for row, index in enumerate(indices.tolist()):
                visible = scenes.boxes[row].any(dim=1)
                target = {"boxes": scenes.boxes[row][visible], "labels": scenes.labels[row][visible] + 1}
                if with_masks:  # the pixels the boxes are drawn around
                    target["masks"] = (scenes.coverage[row][visible] >= 0.5).to(torch.uint8)
                self.targets[index] = target
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, dict]:
        image = (self.pixels[index].float() / 255 - self.mean) / self.std
        return image, {key: value.clone() for key, value in self.targets[index].items()}


class SyntheticDetectionDataModule(SyntheticScenesDataModule, DetectionDataModule):
    """The built-in detection data: ten shape categories (``num_classes`` = 11 with background); ``with_masks``
    adds instance masks to the targets, ``augment`` augments the training split (:class:`DetectionAugment`).
    Other arguments are :class:`SyntheticScenesDataModule`'s."""

    scenes_dataset = SyntheticDetection
    min_image_size = 32

    def __init__(self, *args, with_masks: bool = False, augment: Mapping | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.augment = DetectionAugment.from_config(augment)
        if not isinstance(with_masks, bool):
            raise TypeError(f"data.with_masks must be true or false, got {with_masks!r}")
        self.with_masks = with_masks
        if with_masks:
            self.scenes_dataset = functools.partial(SyntheticDetection, with_masks=True)
