"""Detection data: the synthetic scenes, the collate function and the COCO-format loader on tiny files."""

import json

import pytest
import torch
from PIL import Image

from zoo.data.coco import CocoDetection, CocoDetectionDataModule
from zoo.data.detection import (
    SyntheticDetection,
    SyntheticDetectionDataModule,
    check_detection_target,
    detection_collate,
)
from zoo.data.synthetic import MEAN, STD


def test_synthetic_scenes_have_valid_targets():
    data = SyntheticDetection(24, image_size=64, max_objects=3, seed=0)
    counts = [len(target["labels"]) for _, target in data]
    assert min(counts) >= 1 and max(counts) <= 3 and len(set(counts)) > 1
    for index, (image, target) in enumerate(data):
        assert image.shape == (3, 64, 64)
        check_detection_target(target, index, num_classes=11)
        assert target["labels"].min() >= 1  # 0 is background
        assert (target["boxes"] >= 0).all() and (target["boxes"] <= 64).all()
        assert (target["boxes"][:, 2:] > target["boxes"][:, :2]).all()


def test_boxes_enclose_the_object_pixels():
    """Each box is the tight pixel box of an object: the image differs from the background inside it."""
    data = SyntheticDetection(4, image_size=64, max_objects=1, seed=1)
    image, target = data[0]
    x1, y1, x2, y2 = target["boxes"][0].int().tolist()
    pixels = image * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    border = torch.cat([pixels[:, :, :2].flatten(1), pixels[:, :, -2:].flatten(1)], dim=1).mean(1)
    inside = pixels[:, y1:y2, x1:x2].flatten(1)
    assert (inside - border[:, None]).abs().max() > 0.3


def test_masks_are_the_pixels_the_boxes_frame():
    """With ``with_masks`` each object's mask has its box as tight box (torchvision's masks_to_boxes gives the
    last pixel, ours the edge after it), in the same order; without it there are no masks."""
    from torchvision.ops import masks_to_boxes

    data = SyntheticDetection(6, image_size=64, max_objects=3, seed=0, with_masks=True)
    plain = SyntheticDetection(6, image_size=64, max_objects=3, seed=0)
    for index, ((image, target), (plain_image, plain_target)) in enumerate(zip(data, plain, strict=True)):
        masks = target["masks"]
        assert masks.dtype == torch.uint8 and masks.shape == (len(target["boxes"]), 64, 64)
        check_detection_target(target, index, num_classes=11, mask_size=(64, 64))
        expected = masks_to_boxes(masks) + torch.tensor([0.0, 0.0, 1.0, 1.0])
        assert torch.equal(target["boxes"], expected)
        assert torch.equal(image, plain_image) and "masks" not in plain_target
    module = SyntheticDetectionDataModule(train_size=4, val_size=4, image_size=64, batch_size=2, with_masks=True)
    module.setup()
    _, targets = next(iter(module.train_dataloader()))
    assert all("masks" in target for target in targets)
    with pytest.raises(TypeError, match="with_masks"):
        SyntheticDetectionDataModule(with_masks="yes")


def test_same_seed_same_data_and_splits_differ():
    a, b = SyntheticDetection(8, 64, seed=3), SyntheticDetection(8, 64, seed=3)
    assert torch.equal(a.pixels, b.pixels)
    module = SyntheticDetectionDataModule(train_size=8, val_size=8, image_size=64, batch_size=4)
    module.setup()
    assert not torch.equal(module.train_set.pixels, module.val_set.pixels)
    images, targets = next(iter(module.train_dataloader()))
    assert images.shape == (4, 3, 64, 64) and len(targets) == 4 and module.num_classes == 11


def test_collate_keeps_different_sizes_as_a_list():
    batch = [(torch.zeros(3, 8, 8), {}), (torch.zeros(3, 8, 10), {})]
    images, targets = detection_collate(batch)
    assert isinstance(images, list) and len(targets) == 2


@pytest.mark.parametrize(
    "target, message",
    [
        ({"boxes": torch.tensor([[5.0, 5, 2, 9]]), "labels": torch.tensor([1])}, "x2 >= x1"),
        ({"boxes": torch.zeros(2, 3), "labels": torch.tensor([1, 1])}, r"\[N, 4\]"),
        ({"boxes": torch.zeros(2, 4), "labels": torch.tensor([1])}, "labels must have shape"),
        ({"boxes": torch.zeros(1, 4), "labels": torch.tensor([11])}, "labels must lie in 0..10"),
        ({"labels": torch.tensor([1])}, "'boxes' and 'labels'"),
    ],
)
def test_bad_targets_name_the_image(target, message):
    with pytest.raises(ValueError, match=message) as error:
        check_detection_target(target, 7, num_classes=11)
    assert "image 7" in str(error.value)


def _write_coco(root, categories=(3, 7)):
    (root / "images").mkdir()
    sizes = {1: (40, 60), 2: (50, 50)}  # id: (height, width)
    for image_id, (height, width) in sizes.items():
        Image.new("RGB", (width, height), (200, 10, 10)).save(root / "images" / f"{image_id}.png")
    data = {
        "images": [{"id": i, "file_name": f"{i}.png", "height": h, "width": w} for i, (h, w) in sizes.items()],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": categories[1], "bbox": [10, 5, 20, 10], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": categories[0], "bbox": [0, 0, 60, 40], "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": categories[0], "bbox": [1, 1, 2, 2], "iscrowd": 1},
            {"id": 4, "image_id": 1, "category_id": categories[0], "bbox": [5, 5, 0, 3], "iscrowd": 0},
        ],
        "categories": [{"id": c, "name": f"c{c}"} for c in categories],
    }
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_loader_reads_boxes_and_maps_categories(tmp_path):
    annotations = _write_coco(tmp_path)
    data = CocoDetection(annotations, tmp_path / "images", image_size=120)
    image, target = data[0]
    assert image.shape == (3, 120, 120)
    # 60 px wide → 120: scale 2; xywh [10, 5, 20, 10] → xyxy [20, 10, 60, 30]; category 7 → label 2.
    assert target["boxes"].tolist() == [[20.0, 10.0, 60.0, 30.0], [0.0, 0.0, 120.0, 80.0]]
    assert target["labels"].tolist() == [2, 1]  # the crowd annotation and the zero-width box are left out
    image, target = data[1]  # no annotations: an empty target
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    module = CocoDetectionDataModule(annotations, tmp_path / "images", annotations, tmp_path / "images", 64, 2, 0)
    assert module.num_classes == 3
    images, targets = next(iter(module.train_dataloader()))
    assert images.shape == (2, 3, 64, 64) and len(targets) == 2


def test_coco_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CocoDetection(tmp_path / "missing.json", tmp_path)
    annotations = _write_coco(tmp_path)
    data = json.loads(annotations.read_text())
    data["annotations"][0]["bbox"] = [0, 0, -3, 4]
    annotations.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"annotations\[0\] \(id 1, image 1\) has bbox"):
        CocoDetection(annotations, tmp_path / "images")
    data["annotations"][0]["bbox"] = [0, 0, 3, 4]
    data["annotations"][0]["category_id"] = 99
    annotations.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unknown category 99"):
        CocoDetection(annotations, tmp_path / "images")
