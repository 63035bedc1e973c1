"""The detectors' one target check: what it accepts and returns, the error for each kind of bad target, and that
every registered detector raises it (through the shared path) in training."""

import pytest
import torch

import zoo
from zoo.models.detection.targets import check_detection_target, check_detection_targets

GOOD = {"boxes": torch.tensor([[1.0, 2.0, 10.0, 12.0], [0.0, 0.0, 5.0, 5.0]]), "labels": torch.tensor([1, 2])}


def test_a_good_target_comes_back_as_float_boxes_and_int64_labels():
    target = {"boxes": torch.tensor([[1, 2, 10, 12]]), "labels": torch.tensor([3], dtype=torch.int32), "id": 7}
    checked = check_detection_target(target, 0, num_classes=4)
    assert checked["boxes"].dtype == torch.float32 and checked["labels"].dtype == torch.int64
    assert checked["boxes"].tolist() == [[1.0, 2.0, 10.0, 12.0]] and checked["id"] == 7
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    assert check_detection_target(empty, 0, num_classes=4, positive_size=True)["boxes"].shape == (0, 4)


BAD_TARGETS = [
    ({"boxes": torch.tensor([[5.0, 5, 2, 9]]), "labels": torch.tensor([1])}, "x2 >= x1"),
    ({"boxes": torch.tensor([[5.0, float("nan"), 6, 9]]), "labels": torch.tensor([1])}, "no NaN"),
    ({"boxes": torch.tensor([[0.0, 0, float("inf"), 9]]), "labels": torch.tensor([1])}, "finite"),
    ({"boxes": torch.zeros(2, 3), "labels": torch.tensor([1, 1])}, r"\[N, 4\]"),
    ({"boxes": [[0, 0, 1, 1]], "labels": torch.tensor([1])}, "torch.Tensor"),
    ({"boxes": torch.zeros(2, 4), "labels": torch.tensor([1])}, r"labels must have shape \[2\], got \[1\]"),
    ({"boxes": torch.zeros(1, 4), "labels": [1]}, r"labels must have shape \[1\], got list"),
    ({"boxes": torch.zeros(1, 4), "labels": torch.tensor([1.0])}, "labels must be integers"),
    ({"boxes": torch.zeros(1, 4), "labels": torch.tensor([True])}, "labels must be integers"),
    ({"boxes": torch.zeros(1, 4), "labels": torch.tensor([11])}, r"labels must lie in 0\.\.10, got \[11\]"),
    ({"boxes": torch.zeros(1, 4), "labels": torch.tensor([-1])}, r"0\.\.10, got \[-1\]"),
    ({"labels": torch.tensor([1])}, "expected a dict with 'boxes' and 'labels'"),
    ([torch.zeros(1, 4)], "expected a dict"),
]


@pytest.mark.parametrize("target, message", BAD_TARGETS)
def test_bad_targets_raise_naming_the_image(target, message):
    with pytest.raises(ValueError, match=message) as error:
        check_detection_target(target, 7, num_classes=11)
    assert str(error.value).startswith("target of image 7: ")


def test_positive_size_rejects_empty_boxes():
    flat = {"boxes": torch.tensor([[1.0, 2, 1, 9]]), "labels": torch.tensor([1])}
    assert check_detection_target(flat, 0)["boxes"].shape == (1, 4)
    with pytest.raises(ValueError, match=r"image 0: boxes must have positive width and height, got \[1.0, 2.0"):
        check_detection_target(flat, 0, positive_size=True)


def test_batch_check_counts_the_targets_and_moves_them():
    checked = check_detection_targets([GOOD, GOOD], 2, 3, device=torch.device("cpu"), model_name="Net")
    assert len(checked) == 2 and torch.equal(checked[1]["boxes"], GOOD["boxes"])
    with pytest.raises(ValueError, match=r"targets: Net in training mode needs targets, .* got None"):
        check_detection_targets(None, 2, 3, device=torch.device("cpu"), model_name="Net")
    with pytest.raises(ValueError, match=r"expected a list of 2 dicts \(one per image\), got 1 targets"):
        check_detection_targets([GOOD], 2, 3, device=torch.device("cpu"), model_name="Net")
    with pytest.raises(ValueError, match="got dict"):
        check_detection_targets(GOOD, 2, 3, device=torch.device("cpu"), model_name="Net")
    first = {"boxes": GOOD["boxes"], "labels": torch.tensor([0, 1])}
    with pytest.raises(ValueError, match=r"image 1: labels must lie in 0\.\.1, got \[1, 2\]"):
        check_detection_targets([first, GOOD], 2, 2, device=torch.device("cpu"), model_name="Net")


@pytest.mark.parametrize("name", zoo.list_models(task="detection"))
def test_every_detector_checks_its_training_targets(name):
    """Built on the meta device: the check runs on the (CPU) targets before any layer computes."""
    with torch.device("meta"):
        model = zoo.create_model(name, num_classes=11).train()
    images = torch.empty(2, 3, 64, 64, device="meta")
    bad = {"boxes": torch.tensor([[5.0, 5, 2, 9]]), "labels": torch.tensor([1])}
    with pytest.raises(ValueError, match=r"target of image 1: boxes: expected xyxy boxes with x2 >= x1"):
        model(images, [GOOD, bad])
    with pytest.raises(ValueError, match=r"target of image 0: labels must lie in 0\.\.10"):
        model(images, [{"boxes": GOOD["boxes"], "labels": torch.tensor([1, 11])}, GOOD])
    with pytest.raises(ValueError, match="in training mode needs targets"):
        model(images)
