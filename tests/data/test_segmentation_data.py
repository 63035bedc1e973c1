"""Segmentation data: synthetic masks (with an ignore border) and the VOC-layout loader on tiny files."""

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.data.segmentation import (
    IGNORE_INDEX,
    SyntheticSegmentation,
    SyntheticSegmentationDataModule,
    VOCSegmentation,
    VOCSegmentationDataModule,
    masks_from_coverage,
)


def test_masks_from_coverage_by_hand():
    labels = torch.tensor([[2, 5]])  # object 0 is class 3, object 1 is class 6
    coverage = torch.zeros(1, 2, 1, 5)
    coverage[0, 0, 0] = torch.tensor([1.0, 0.5, 0.0, 0.0, 0.25])
    coverage[0, 1, 0] = torch.tensor([0.0, 0.25, 0.0, 1.0, 0.5])
    mask = masks_from_coverage(labels, coverage)
    assert mask.tolist() == [[[3, IGNORE_INDEX, 0, 6, IGNORE_INDEX]]]


def test_synthetic_masks_cover_every_class_and_ignore_borders():
    data = SyntheticSegmentation(32, image_size=48, max_objects=3, seed=0)
    image, mask = data[0]
    assert image.shape == (3, 48, 48) and mask.shape == (48, 48) and mask.dtype == torch.int64
    values = set(data.masks.unique().tolist())
    assert values == set(range(11)) | {IGNORE_INDEX}
    border = (data.masks == IGNORE_INDEX).float().mean()
    assert 0.005 < border < 0.1  # a thin border, not whole objects


def test_datamodule_batches():
    module = SyntheticSegmentationDataModule(train_size=8, val_size=4, image_size=32, batch_size=4)
    images, masks = next(iter(module.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and masks.shape == (4, 32, 32) and module.num_classes == 11


def _write_voc(root, mask_values):
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [224, 224, 192] * 253
    for image_id, values in mask_values.items():
        height, width = len(values), len(values[0])
        Image.new("RGB", (width, height), (90, 30, 200)).save(root / "JPEGImages" / f"{image_id}.jpg")
        mask = Image.fromarray(np.array(values, dtype=np.uint8), mode="P")
        mask.putpalette(palette)
        mask.save(root / "SegmentationClass" / f"{image_id}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(mask_values) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text(next(iter(mask_values)) + "\n")


def test_voc_reads_palette_indices_and_pads_with_ignore(tmp_path):
    values = [[0, 0, 1, 1, 2, 2, 255, 255]] * 4  # 4×8 mask, class indices in the palette
    _write_voc(tmp_path, {"a": values, "b": values})
    data = VOCSegmentation(tmp_path, "train", image_size=16, num_classes=3)
    image, mask = data[0]
    assert image.shape == (3, 16, 16) and mask.shape == (16, 16)
    # 8 px wide → 16: each column doubles; 4 rows → 8, the other 8 rows are padding (ignored).
    assert mask[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 255, 255, 255, 255]
    assert (mask[8:] == IGNORE_INDEX).all()
    module = VOCSegmentationDataModule(str(tmp_path), num_classes=3, image_size=16, batch_size=2, num_workers=0)
    images, masks = next(iter(module.train_dataloader()))
    assert images.shape == (2, 3, 16, 16) and masks.shape == (2, 16, 16)


def test_voc_mask_with_a_class_outside_num_classes_is_an_error(tmp_path):
    _write_voc(tmp_path, {"a": [[0, 1, 7, 255]] * 2})
    with pytest.raises(ValueError, match=r"class values must lie in 0..2 .* found \[7\]"):
        VOCSegmentation(tmp_path, "train", image_size=8, num_classes=3)[0]


def test_voc_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="split list"):
        VOCSegmentation(tmp_path, "train")
    _write_voc(tmp_path, {"a": [[0, 1]]})
    (tmp_path / "JPEGImages" / "a.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="lists 'a' but"):
        VOCSegmentation(tmp_path, "train")
