"""Mask R-CNN against torchvision.models.detection: parameter counts (frozen and ordinary batch norm, the mask
branch in closed form), the whole model with torchvision's weights (detections with their pasted masks, the
training losses from the same RNG state), each mask function on its own (targets by RoIAlign, the loss,
pasting into the image, the transform's mask resizing), a training step of the small variant and bad masks."""

import functools
import math

import pytest
import torch
from reference_models import randomize_
from torch import nn
from torchvision.models.detection import mask_rcnn as tv_mask_rcnn
from torchvision.models.detection import roi_heads as tv_roi_heads
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone as reference_resnet_fpn_backbone
from torchvision.models.detection.transform import GeneralizedRCNNTransform as ReferenceTransform

import zoo
from zoo.data.synthetic import MEAN, STD, render_scenes
from zoo.models.detection.mask_head import (
    MaskRCNNHeads,
    MaskRCNNPredictor,
    maskrcnn_loss,
    paste_masks_in_image,
    project_masks_on_boxes,
)
from zoo.models.detection.mask_rcnn import MaskRCNN, mask_rcnn_resnet18_fpn, mask_rcnn_resnet50_fpn
from zoo.models.detection.transform import GeneralizedRCNNTransform

LOSS_KEYS = ["loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"]


def n_params(model: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def box_masks(boxes: torch.Tensor, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """uint8 masks ``[K, H, W]``: random pixels inside each box (an object's mask lies within its box)."""
    ys, xs = torch.arange(height)[:, None] + 0.5, torch.arange(width)[None] + 0.5
    masks = []
    for x1, y1, x2, y2 in boxes.tolist():
        inside = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
        masks.append(inside & (torch.rand(height, width, generator=generator) < 0.7))
    return torch.stack(masks).to(torch.uint8) if masks else torch.zeros(0, height, width, dtype=torch.uint8)


# --- parameter counts -------------------------------------------------------------------------------------------


def test_parameter_counts_match_torchvision():
    with torch.device("meta"):
        # torchvision's setting for a pretrained backbone: frozen BN, 3 trainable stages.
        reference = tv_mask_rcnn.MaskRCNN(
            reference_resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=3), 91
        )
        ours = mask_rcnn_resnet50_fpn()
        # Without pretrained weights torchvision uses ordinary BN and trains every stage.
        reference_bn = tv_mask_rcnn.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
        ours_bn = mask_rcnn_resnet50_fpn(norm_layer=nn.BatchNorm2d, trainable_backbone_layers=5)
    assert n_params(ours) == n_params(reference) == 44_401_393
    assert n_params(ours, trainable=True) == n_params(reference, trainable=True)
    assert n_params(ours_bn) == n_params(reference_bn) == 44_454_513
    assert n_params(ours_bn, trainable=True) == n_params(reference_bn, trainable=True)


@pytest.mark.parametrize("channels, layers, reduced, classes", [(256, (256,) * 4, 256, 91), (32, (16, 24), 8, 11)])
def test_mask_branch_parameter_counts_closed_form(channels, layers, reduced, classes):
    head, predictor = MaskRCNNHeads(channels, layers), MaskRCNNPredictor(layers[-1], reduced, classes)
    widths = [channels, *layers]
    assert (
        n_params(head)
        == sum((9 * c_in + 1) * c_out for c_in, c_out in zip(widths, widths[1:], strict=False))
        == n_params(tv_mask_rcnn.MaskRCNNHeads(channels, list(layers), 1))
    )
    assert n_params(predictor) == (4 * layers[-1] + 1) * reduced + (reduced + 1) * classes
    assert n_params(predictor) == n_params(tv_mask_rcnn.MaskRCNNPredictor(layers[-1], reduced, classes))
    if channels == 256:
        assert n_params(head) == 2_360_320 and n_params(predictor) == 285_787


# --- the whole model, with torchvision's weights ------------------------------------------------------------------

SIZE = 64  # min_size = max_size: the 64 px image keeps its size, the other is resized
DETECTIONS = 10  # fewer than torchvision's 100, to keep the 14x14 mask head cheap; the cut still bites


@pytest.fixture(scope="module")
def resnet50_pair():
    """torchvision's Mask R-CNN (frozen BN, layer2..4 trainable), randomised, and ours with its state_dict."""
    torch.manual_seed(0)
    settings = {"min_size": SIZE, "max_size": SIZE, "box_detections_per_img": DETECTIONS}
    reference = tv_mask_rcnn.MaskRCNN(
        reference_resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=3), 91, **settings
    )
    randomize_(reference)
    with torch.device("meta"):
        ours = mask_rcnn_resnet50_fpn(**settings)
    zoo.load_reference_weights(ours.to_empty(device="cpu"), reference.state_dict())
    return ours, reference


def pair_inputs():
    generator = torch.Generator().manual_seed(1)
    images = [torch.rand(3, SIZE, SIZE, generator=generator), torch.rand(3, 40, 56, generator=generator)]
    boxes = [torch.tensor([[5.0, 6.0, 40.0, 50.0], [20.0, 10.0, 60.0, 30.0]]), torch.tensor([[2.0, 3.0, 30.0, 35.0]])]
    targets = [
        {"boxes": b, "labels": labels, "masks": box_masks(b, *image.shape[-2:], generator)}
        for b, labels, image in zip(boxes, (torch.tensor([3, 7]), torch.tensor([9])), images, strict=True)
    ]
    return images, targets


def test_eval_matches_torchvision(resnet50_pair):
    ours, reference = resnet50_pair
    ours.eval(), reference.eval()
    images, _ = pair_inputs()
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    for mine, theirs, image in zip(actual, expected, images, strict=True):
        assert set(mine) == {"boxes", "scores", "labels", "masks"}
        assert len(theirs["boxes"]) == DETECTIONS
        torch.testing.assert_close(mine["boxes"], theirs["boxes"], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(mine["scores"], theirs["scores"], rtol=0, atol=1e-4)
        assert torch.equal(mine["labels"], theirs["labels"])
        assert mine["masks"].shape == (DETECTIONS, 1, *image.shape[-2:])
        assert theirs["masks"].amax() > 0.5  # masks, not empty images
        torch.testing.assert_close(mine["masks"], theirs["masks"], rtol=0, atol=1e-4)


def test_training_losses_match_torchvision(resnet50_pair):
    """The same RNG state before both calls: the transform's and both samplers' draws coincide. The second
    image is resized (40 x 56 → 45 x 64), and its mask with it."""
    ours, reference = resnet50_pair
    ours.train(), reference.train()
    images, targets = pair_inputs()
    with torch.no_grad():
        torch.manual_seed(3)
        expected = reference(images, targets)
        torch.manual_seed(3)
        actual = ours(images, targets)
    assert list(actual) == LOSS_KEYS and list(expected) == LOSS_KEYS
    for key in LOSS_KEYS:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-4, atol=1e-6)
    assert actual["loss_mask"] > 0


# --- the mask functions on their own ----------------------------------------------------------------------------


def random_boxes(count: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    corner = torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * 0.8
    size = 1.0 + torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * 0.6
    return torch.cat([corner, corner + size], dim=1)


def test_project_masks_on_boxes_matches_torchvision():
    generator = torch.Generator().manual_seed(0)
    gt_masks = (torch.rand(4, 30, 40, generator=generator) > 0.5).to(torch.uint8)
    boxes = random_boxes(12, 30, 40, generator)
    matched = torch.randint(0, 4, (12,), generator=generator)
    expected = tv_roi_heads.project_masks_on_boxes(gt_masks, boxes, matched, 28)
    actual = project_masks_on_boxes(gt_masks, boxes, matched, 28)
    assert actual.shape == (12, 28, 28)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)


def test_maskrcnn_loss_matches_torchvision():
    generator = torch.Generator().manual_seed(1)
    for counts in ([5, 3], [0, 4], [0, 0]):
        logits = torch.randn(sum(counts), 6, 28, 28, generator=generator, requires_grad=True)
        gt_masks = [(torch.rand(3, 32, 32, generator=generator) > 0.5).to(torch.uint8) for _ in counts]
        gt_labels = [torch.randint(1, 6, (3,), generator=generator) for _ in counts]
        proposals = [random_boxes(n, 32, 32, generator) for n in counts]
        matched = [torch.randint(0, 3, (n,), generator=generator) for n in counts]
        expected = tv_roi_heads.maskrcnn_loss(logits, proposals, gt_masks, gt_labels, matched)
        actual = maskrcnn_loss(logits, proposals, gt_masks, gt_labels, matched)
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-7)
        actual.backward()  # connected to the logits even when there is nothing to learn from


def test_paste_masks_matches_torchvision():
    generator = torch.Generator().manual_seed(2)
    masks = torch.rand(6, 1, 28, 28, generator=generator)
    # Inside, over the right/bottom border, over the top-left corner, tiny, and a box wholly outside.
    boxes = torch.tensor(
        [
            [4.3, 5.7, 30.2, 25.9],
            [40.0, 30.0, 70.5, 58.0],
            [-6.0, -3.5, 12.0, 9.0],
            [10.0, 10.0, 10.4, 10.2],
            [0.0, 0.0, 49.9, 39.9],
            [80.0, 60.0, 90.0, 70.0],
        ]
    )
    expected = tv_roi_heads.paste_masks_in_image(masks, boxes, (40, 50))
    actual = paste_masks_in_image(masks, boxes, (40, 50))
    assert actual.shape == (6, 1, 40, 50)
    # To 1e-5: ours resizes all masks in one batch of gathers, F.interpolate (torchvision's, per mask) in its own
    # kernel; the two round differently, each within a few 1e-6 of the resize in float64.
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)
    assert (actual > 0).sum() == (expected > 0).sum()  # the same pixels pasted
    empty = paste_masks_in_image(masks[:0], boxes[:0], (40, 50))
    assert empty.shape == tv_roi_heads.paste_masks_in_image(masks[:0], boxes[:0], (40, 50)).shape == (0, 1, 40, 50)


def test_transform_resizes_masks_as_torchvision():
    generator = torch.Generator().manual_seed(3)
    sizes = [(37, 53), (64, 40)]
    images = [torch.rand(3, h, w, generator=generator) for h, w in sizes]
    targets = []
    for h, w in sizes:
        boxes = random_boxes(3, h, w, generator)
        targets.append({"boxes": boxes, "labels": torch.tensor([1, 2, 3]), "masks": box_masks(boxes, h, w, generator)})
    reference, ours = ReferenceTransform(48, 80, MEAN, STD), GeneralizedRCNNTransform(48, 80, MEAN, STD)
    torch.manual_seed(5)
    _, expected = reference(images, targets)
    torch.manual_seed(5)
    _, actual = ours(images, targets)
    for mine, theirs in zip(actual, expected, strict=True):
        assert mine["masks"].dtype == torch.uint8 and mine["masks"].shape[1:] != (37, 53)
        assert torch.equal(mine["masks"], theirs["masks"])


# --- the small variant --------------------------------------------------------------------------------------------


@functools.cache
def _scenes(num_images: int, size: int, objects: int, seed: int):
    return render_scenes(num_images, size, objects, generator=torch.Generator().manual_seed(seed))


def synthetic_batch(num_images: int = 2, size: int = 64, objects: int = 2, seed: int = 0):
    """Normalised scenes; targets with labels 1..10 and each object's visible pixels (coverage >= 0.5) as mask."""
    scenes = _scenes(num_images, size, objects, seed)
    images = (scenes.images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    targets = []
    for boxes, labels, coverage in zip(scenes.boxes, scenes.labels, scenes.coverage, strict=True):
        visible = boxes.any(dim=1)
        masks = (coverage[visible] >= 0.5).to(torch.uint8)
        targets.append({"boxes": boxes[visible], "labels": labels[visible] + 1, "masks": masks})
    return images, targets


@pytest.fixture(scope="module")
def tiny_model() -> MaskRCNN:
    torch.manual_seed(0)
    return mask_rcnn_resnet18_fpn(
        num_classes=11,
        fpn_out_channels=32,
        representation_size=64,
        rpn_post_nms_top_n_test=50,
        mask_layers=(16, 16),
        mask_dim_reduced=16,
    )


def test_registered_builders():
    for name in ("mask_rcnn_resnet50_fpn", "mask_rcnn_resnet18_fpn"):
        assert name in zoo.list_models(task="detection")
    with torch.device("meta"):
        model = zoo.create_model("mask_rcnn_resnet18_fpn", num_classes=11)
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 11
    assert model.roi_heads.mask_roi_pool.output_size == (14, 14)
    assert model.transform.min_size is None  # the small-image settings of faster_rcnn_resnet18_fpn


def test_small_variant_trains_a_step_and_segments(tiny_model):
    model = tiny_model.train()
    images, targets = synthetic_batch()
    losses = model(images, targets)
    assert list(losses) == LOSS_KEYS
    assert all(value.dim() == 0 and math.isfinite(value.item()) for value in losses.values())
    sum(losses.values()).backward()
    mask_weights = model.roi_heads.mask_predictor.mask_fcn_logits.weight
    assert mask_weights.grad is not None and mask_weights.grad.abs().sum() > 0
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 64, 64)}]
    with torch.no_grad():
        losses = model([images[0]], [{**empty[0], "masks": empty[0]["masks"].to(torch.uint8)}])
    assert losses["loss_mask"].item() == 0.0
    with torch.no_grad():
        detections = model.eval()(list(images))
    for detection in detections:
        assert set(detection) == {"boxes", "scores", "labels", "masks"}
        masks = detection["masks"]
        assert masks.shape == (len(detection["boxes"]), 1, 64, 64)
        assert masks.dtype == torch.float32 and ((masks >= 0) & (masks <= 1)).all()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: {**t, "masks": t["masks"][:1]}, r"one mask per box \(2\), got 1 masks"),
        (lambda t: {**t, "masks": t["masks"][:, :32]}, r"image's size 64×64 \(H×W\), got 32×64"),
        (lambda t: {**t, "masks": t["masks"].float()}, "uint8 or bool"),
        (lambda t: {**t, "masks": t["masks"][0]}, r"shape \[2, H, W\]"),
        (lambda t: {key: value for key, value in t.items() if key != "masks"}, r"'masks' \[K, H, W\], missing"),
    ],
)
def test_bad_masks_raise_naming_the_image(tiny_model, change, message):
    model = tiny_model.train()
    images, targets = synthetic_batch()
    with pytest.raises(ValueError, match=message) as error:
        model(images, [targets[0], change(targets[1])])
    assert "image 1" in str(error.value)


def test_bad_arguments_raise():
    with torch.device("meta"):
        backbone = mask_rcnn_resnet18_fpn(num_classes=3).backbone
        with pytest.raises(ValueError, match="mask_predictor"):
            MaskRCNN(backbone, 3, mask_predictor=MaskRCNNPredictor(256, 256, 3))
    with pytest.raises(ValueError, match="layers"):
        MaskRCNNHeads(256, ())
    with pytest.raises(ValueError, match=r"\[D, 1, M, M\]"):
        paste_masks_in_image(torch.zeros(2, 28, 28), torch.zeros(2, 4), (10, 10))
