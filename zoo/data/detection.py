"""Detection data: targets in torchvision's format, a collate function, and the built-in synthetic scenes.

An item is ``(image, target)``: a normalised float image (3, H, W) and
``{"boxes": FloatTensor[K, 4] xyxy in pixels, "labels": Int64Tensor[K]}`` with K ≥ 0. Labels start at 1:
0 is background (torchvision's convention), so a dataset of C categories has ``num_classes = C + 1``.
A batch is ``(images, targets)``: images stacked into (N, 3, H, W) when they share a size (a list
otherwise), targets a list of dicts.

The synthetic scenes come from the same renderer as the classification data (``render_scenes``): each
image holds 1 to ``max_objects`` shapes; an object hidden entirely by later ones is dropped, a partly hidden
one keeps the box of its visible pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from zoo.data.base import ImageDataModule
from zoo.data.synthetic import MEAN, STD, SyntheticScenesDataModule, render_varied_scenes
from zoo.ops.boxes import check_boxes

__all__ = [
    "DetectionDataModule",
    "SyntheticDetection",
    "SyntheticDetectionDataModule",
    "check_detection_target",
    "detection_collate",
]


def check_detection_target(target: dict, index: int, num_classes: int | None = None) -> None:
    """Raise ValueError naming image ``index`` unless ``target`` holds xyxy ``boxes`` [K, 4] and ``labels`` [K]."""
    if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
        raise ValueError(f"target of image {index}: expected a dict with 'boxes' and 'labels', got {target!r}")
    boxes, labels = target["boxes"], target["labels"]
    try:
        check_boxes(boxes, "boxes")
    except (TypeError, ValueError) as error:
        raise ValueError(f"target of image {index}: {error}") from None
    if not isinstance(labels, Tensor) or labels.shape != boxes.shape[:1]:
        shape = list(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"target of image {index}: labels must have shape [{len(boxes)}], got {shape}")
    if num_classes is not None and labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"target of image {index}: labels must lie in 0..{num_classes - 1}, got {labels.unique().tolist()}"
        )


def detection_collate(batch: list[tuple[Tensor, dict]]) -> tuple[Tensor | list[Tensor], list[dict]]:
    """Stack same-size images into one tensor (a list when sizes differ); keep targets as a list."""
    images = [image for image, _ in batch]
    targets = [target for _, target in batch]
    if all(image.shape == images[0].shape for image in images):
        return torch.stack(images), targets
    return images, targets


class DetectionDataModule(ImageDataModule):
    """Base for detection datasets: items ``(image, target dict)``, batches from :func:`detection_collate`."""

    collate_fn = staticmethod(detection_collate)


class SyntheticDetection(Dataset):
    """``num_samples`` scenes of 1..``max_objects`` shapes (labels 1..10), rendered once from ``seed``."""

    def __init__(self, num_samples: int, image_size: int = 128, max_objects: int = 3, seed: int = 0) -> None:
        self.pixels = torch.empty(num_samples, 3, image_size, image_size, dtype=torch.uint8)
        self.targets: list[dict] = [{} for _ in range(num_samples)]
        for indices, scenes in render_varied_scenes(num_samples, image_size, max_objects, seed):
            self.pixels[indices] = (scenes.images * 255).round().to(torch.uint8)
            for row, index in enumerate(indices.tolist()):
                visible = scenes.boxes[row].any(dim=1)
                self.targets[index] = {"boxes": scenes.boxes[row][visible], "labels": scenes.labels[row][visible] + 1}
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, dict]:
        image = (self.pixels[index].float() / 255 - self.mean) / self.std
        target = self.targets[index]
        return image, {"boxes": target["boxes"].clone(), "labels": target["labels"].clone()}


class SyntheticDetectionDataModule(SyntheticScenesDataModule, DetectionDataModule):
    """The built-in detection data: ten shape categories (``num_classes`` = 11 with background)."""

    scenes_dataset = SyntheticDetection
    min_image_size = 32
