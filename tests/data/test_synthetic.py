"""The built-in synthetic data: deterministic, balanced, consistent boxes/masks, and learnable."""

import pytest
import torch
from torchvision.ops import masks_to_boxes

from zoo.data.synthetic import SHAPE_NAMES, SyntheticClassification, SyntheticDataModule, render_scenes


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = (SyntheticClassification(64, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_classes_are_roughly_balanced_and_images_normalised():
    data = SyntheticClassification(2000, seed=0)
    counts = torch.bincount(data.labels, minlength=len(SHAPE_NAMES))
    assert counts.min() > 150 and counts.max() < 250
    image, label = data[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and isinstance(label, int)
    assert abs(data.images.mean()) < 0.5 and 0.5 < data.images.std() < 2.0


def test_boxes_match_torchvision_masks_to_boxes():
    scenes = render_scenes(16, 48, objects_per_image=3, generator=torch.Generator().manual_seed(0))
    solid = (scenes.coverage >= 0.5).flatten(0, 1)
    visible = solid.flatten(1).any(1)
    expected = masks_to_boxes(solid[visible])
    expected[:, 2:] += 1  # torchvision gives the last pixel's index; ours is its far edge
    torch.testing.assert_close(scenes.boxes.flatten(0, 1)[visible], expected)
    assert scenes.images.shape == (16, 3, 48, 48) and scenes.images.min() >= 0 and scenes.images.max() <= 1


def test_color_alone_does_not_tell_the_class():
    data = SyntheticClassification(2000, seed=0)
    mean_colour = data.images.mean(dim=(2, 3))
    per_class = torch.stack([mean_colour[data.labels == k].mean(0) for k in range(len(SHAPE_NAMES))])
    assert per_class.std(0).max() < 0.1


def test_argument_errors():
    with pytest.raises(ValueError, match="image_size must be an int >= 8"):
        SyntheticDataModule(image_size=4)
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        SyntheticClassification(0)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        SyntheticDataModule(batch_size=0)
