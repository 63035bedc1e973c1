"""Validation of detectors that return masks: DetectionTask scores them with COCO's segm mAP beside the boxes.

A stand-in model returns known detections, so the logged values have closed forms (1 for perfect masks, 0 for masks
below the 0.5 threshold while the boxes are perfect); Mask R-CNN then runs through train(cfg) on the built-in data.
"""

import functools

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from train_helpers import compose_train

from zoo.data.detection import SyntheticDetection, detection_collate
from zoo.tasks.detection import DetectionTask
from zoo.training import train


class KnownDetections(nn.Module):
    """In eval, each image's detections are its target's boxes and labels with score 1 and ``masks`` made from the
    target's masks by ``mask_probabilities`` ([K, H, W] uint8 -> [K, 1, H, W] float), Mask R-CNN's layout."""

    def __init__(self, targets, mask_probabilities=None):
        super().__init__()
        self.targets, self.mask_probabilities = targets, mask_probabilities
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, images, targets=None):
        detections = []
        for target in self.targets[: len(images)]:
            detection = {
                "boxes": target["boxes"],
                "labels": target["labels"],
                "scores": torch.ones(len(target["boxes"])),
            }
            if self.mask_probabilities is not None:
                detection["masks"] = self.mask_probabilities(target["masks"].float())[:, None]
            detections.append(detection)
        return detections


def validate(mask_probabilities, targets_have_masks=True):
    known = [target for _, target in SyntheticDetection(4, image_size=32, max_objects=3, seed=0, with_masks=True)]
    data = SyntheticDetection(4, image_size=32, max_objects=3, seed=0, with_masks=targets_have_masks)
    task = DetectionTask(
        KnownDetections(known, mask_probabilities),
        functools.partial(torch.optim.SGD, lr=0.1),
        num_classes=11,
    )
    loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=detection_collate)
    trainer = pl.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    return trainer.validate(task, loader, verbose=False)[0]


def test_perfect_masks_log_one():
    # Probabilities 0.7 on the object, 0.3 elsewhere: binarised at 0.5, the masks are the targets'.
    metrics = validate(lambda masks: 0.3 + 0.4 * masks)
    assert metrics["val/map"] == metrics["val/mask_map"] == metrics["val/mask_map_50"] == 1.0


def test_masks_below_the_threshold_log_zero_while_the_boxes_are_perfect():
    # Probability 0.4 everywhere: binarised at 0.5, every mask is empty and shares no pixel with its object.
    metrics = validate(lambda masks: torch.full_like(masks, 0.4))
    assert metrics["val/map"] == 1.0
    assert metrics["val/mask_map"] == metrics["val/mask_map_50"] == 0.0


@pytest.mark.parametrize("side", ["detections", "targets"])
def test_no_mask_metrics_without_masks_on_both_sides(side):
    # Detections without masks (any box detector), or targets without them (data.with_masks=false).
    if side == "detections":
        metrics = validate(None)
    else:
        metrics = validate(lambda masks: masks, targets_have_masks=False)
    assert metrics["val/map"] == 1.0 and not any(key.startswith("val/mask_") for key in metrics)


def test_mask_rcnn_logs_mask_map_through_train(tmp_path):
    cfg = compose_train(
        tmp_path,
        "model=mask_rcnn_resnet18_fpn",
        "data.with_masks=true",
        "debug=fast",
        "++model.input_size=64",
        "data.train_size=2",
        "data.val_size=2",
        "data.batch_size=2",
    )
    metrics = train(cfg)
    assert metrics["monitor"] == "val/map_50"  # the boxes keep deciding the checkpoint
    for key in ("val/mask_map", "val/mask_map_50"):
        assert 0.0 <= metrics[key] <= 1.0, key
