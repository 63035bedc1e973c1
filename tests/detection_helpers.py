"""Helpers shared by the one-stage detector tests (RetinaNet, FCOS): comparisons with torchvision's outputs and
batches of the built-in synthetic scenes."""

import functools

import torch
from torch import nn

from zoo.data.synthetic import MEAN, STD, render_scenes


def n_params(model: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def assert_detections_equal(actual: list[dict], expected: list[dict]) -> None:
    assert len(actual) == len(expected)
    for ours, theirs in zip(actual, expected, strict=True):
        assert len(theirs["boxes"]) > 0  # a comparison of empty lists would prove nothing
        torch.testing.assert_close(ours["boxes"], theirs["boxes"], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(ours["scores"], theirs["scores"], rtol=0, atol=1e-5)
        assert torch.equal(ours["labels"], theirs["labels"]) and ours["labels"].dtype == torch.int64


def assert_losses_equal(actual: dict, expected: dict) -> None:
    assert list(actual) == list(expected)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-4, atol=1e-6)


@functools.cache
def _scenes(num_images: int, size: int, objects: int, seed: int):
    return render_scenes(num_images, size, objects, generator=torch.Generator().manual_seed(seed))


def synthetic_batch(num_images: int = 2, size: int = 64, objects: int = 2, seed: int = 0):
    """Normalised synthetic scenes and their targets (labels 1..10; 0 is the background)."""
    scenes = _scenes(num_images, size, objects, seed)
    images = (scenes.images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    targets = []
    for boxes, labels in zip(scenes.boxes, scenes.labels, strict=True):
        visible = boxes.any(dim=1)
        targets.append({"boxes": boxes[visible], "labels": labels[visible] + 1})
    return images, targets
