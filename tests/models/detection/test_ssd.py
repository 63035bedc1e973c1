"""SSD300 and SSDlite against torchvision.models.detection: parameter counts, default boxes, matching, the fixed-size
transform, detections and training losses after loading torchvision's weights, a training step, and bad input.

SSDlite (320 px, 3.4 M parameters) runs in the default suite; SSD300 (VGG-16, 31 GMACs an image) under -m slow."""

import pytest
import torch
import torchvision
from reference_models import randomize_
from torch import nn
from torchvision.models.detection import _utils as tv_utils
from torchvision.models.detection import ssd300_vgg16 as tv_ssd300_vgg16
from torchvision.models.detection import ssdlite320_mobilenet_v3_large as tv_ssdlite
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator as ReferenceDefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList as ReferenceImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform as ReferenceTransform

import zoo
from zoo.data.synthetic import render_scenes
from zoo.models.detection.batching import ImageList
from zoo.models.detection.ssd import SSD, ssd300_vgg16, ssdlite320_mobilenet_v3_large
from zoo.models.detection.ssd_backbone import SSDLITE_NORM, SSDLiteMobileNetV3Backbone
from zoo.models.detection.transform import GeneralizedRCNNTransform
from zoo.ops.default_boxes import DefaultBoxGenerator
from zoo.ops.matcher import SSDMatcher

SSD300_BOXES = {
    "aspect_ratios": [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
    "scales": [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
    "steps": [8, 16, 32, 64, 100, 300],
}
SSDLITE_BOXES = {"aspect_ratios": [[2, 3]] * 6, "min_ratio": 0.2, "max_ratio": 0.95}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _spread_weights(reference: nn.Module, lite: bool) -> None:
    """Random weights whose scores are all distinct (ties would make NMS's order, not the model, decide). Without
    it SSDlite's features shrink to constants through 17 blocks of N(0, 0.03²) convolutions and VGG's explode on
    0..255 inputs, and in both cases many boxes share one score."""
    if lite:
        for module in reference.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    randomize_(reference)
    with torch.no_grad():
        if not lite:
            reference.backbone.features[0].weight.mul_(1 / 255)
            for module in reference.modules():
                if isinstance(module, nn.Conv2d):
                    module.weight.mul_(0.5)
        generator = torch.Generator().manual_seed(3)
        for key, value in reference.named_parameters():
            if key.startswith("head.classification_head") and key.endswith("bias"):
                value.normal_(0, 1, generator=generator)


def _pair(lite: bool, num_classes: int = 91):
    torch.manual_seed(0)
    reference = (tv_ssdlite if lite else tv_ssd300_vgg16)(weights_backbone=None, num_classes=num_classes)
    _spread_weights(reference, lite)
    ours = (ssdlite320_mobilenet_v3_large if lite else ssd300_vgg16)(num_classes=num_classes)
    zoo.load_reference_weights(ours, reference.state_dict())
    return ours, reference


@pytest.fixture(scope="module")
def ssdlite_pair():
    return _pair(lite=True)


@pytest.fixture(scope="module")
def ssd300_pair():
    return _pair(lite=False)


def _scenes(count=2, size=128, seed=1):
    return list(render_scenes(count, size, 3, generator=torch.Generator().manual_seed(seed)).images)


def _targets(count, size, seed=0, objects=3):
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(count):
        corner = torch.rand(objects, 2, generator=generator) * (size * 0.6)
        side = 8 + torch.rand(objects, 2, generator=generator) * (size * 0.35)
        boxes = torch.cat([corner, corner + side], dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, 91, (objects,), generator=generator)})
    return targets


def assert_detections_equal(actual, expected):
    assert len(actual) == len(expected)
    for ours, theirs in zip(actual, expected, strict=True):
        assert len(theirs["boxes"]) > 0 and len(theirs["scores"].unique()) == len(theirs["scores"])  # no ties
        torch.testing.assert_close(ours["boxes"], theirs["boxes"], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(ours["scores"], theirs["scores"], rtol=0, atol=1e-5)
        assert torch.equal(ours["labels"], theirs["labels"]) and ours["labels"].dtype == torch.int64


# --- parts --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "grids", "size"),
    [(SSD300_BOXES, [38, 19, 10, 5, 3, 1], 300), (SSDLITE_BOXES, [20, 10, 5, 3, 2, 1], 320)],
)
def test_default_boxes_equal_torchvision(config, grids, size):
    images = ReferenceImageList(torch.zeros(2, 3, size, size), [(size, size)] * 2)
    maps = [torch.zeros(2, 8, grid, grid) for grid in grids]
    expected = ReferenceDefaultBoxGenerator(**config)(images, maps)
    actual = DefaultBoxGenerator(**config)(ImageList(images.tensors, images.image_sizes), maps)
    assert len(actual) == 2 and actual[0].shape == (8732 if size == 300 else 3234, 4)
    for ours, theirs in zip(actual, expected, strict=True):
        assert torch.equal(ours, theirs)
    generator = DefaultBoxGenerator(**config)
    assert generator.num_anchors_per_location() == ReferenceDefaultBoxGenerator(**config).num_anchors_per_location()


def test_ssd_matcher_equals_torchvision():
    generator = torch.Generator().manual_seed(0)
    quality = torch.rand(5, 300, generator=generator) * 0.7  # most best matches below 0.5: the best-prior rule acts
    assert torch.equal(SSDMatcher(0.5)(quality), tv_utils.SSDMatcher(0.5)(quality))


@pytest.mark.parametrize("training", [False, True])
def test_fixed_size_transform_equals_torchvision(training):
    images = [torch.rand(3, 120, 90), torch.rand(3, 64, 200)]
    targets = _targets(2, 64)
    kwargs = {"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.3, 0.4], "size_divisible": 1}
    ours = GeneralizedRCNNTransform(300, 300, fixed_size=(300, 300), **kwargs).train(training)
    theirs = ReferenceTransform(300, 300, fixed_size=(300, 300), **kwargs).train(training)
    torch.manual_seed(0)
    batch, new_targets = ours(images, targets)
    next_draw = torch.rand(1)
    torch.manual_seed(0)
    expected, expected_targets = theirs(images, targets)
    assert torch.equal(torch.rand(1), next_draw)  # the same RNG draws (a min_size per image in training)
    assert torch.equal(batch.tensors, expected.tensors) and batch.image_sizes == expected.image_sizes
    for mine, reference in zip(new_targets, expected_targets, strict=True):
        assert torch.equal(mine["boxes"], reference["boxes"])


def test_reduced_tail_mobilenet_v3_equals_torchvision():
    ours = zoo.create_model("mobilenet_v3_large", reduced_tail=True)
    reference = randomize_(torchvision.models.mobilenet_v3_large(reduced_tail=True)).eval()
    assert n_params(ours) == n_params(reference) == 2_569_352
    zoo.load_reference_weights(ours, reference.state_dict())
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(ours.eval()(x), reference(x), rtol=1e-4, atol=1e-4)


# --- whole models -------------------------------------------------------------------------------------------
def test_parameter_counts_match_torchvision():
    assert n_params(ssdlite320_mobilenet_v3_large()) == n_params(tv_ssdlite(weights_backbone=None)) == 3_440_060
    lite = ssdlite320_mobilenet_v3_large(num_classes=21)
    assert n_params(lite) == n_params(tv_ssdlite(weights_backbone=None, num_classes=21))


@pytest.mark.slow  # three VGG-16s: 10 s (tests/models/test_parity.py checks the 91-class count by default)
def test_ssd300_parameter_counts_match_torchvision():
    assert n_params(ssd300_vgg16()) == n_params(tv_ssd300_vgg16(weights_backbone=None)) == 35_641_826
    assert n_params(ssd300_vgg16(num_classes=21)) == n_params(tv_ssd300_vgg16(weights_backbone=None, num_classes=21))


@pytest.mark.parametrize("trainable", [0, 3, 6])
def test_ssdlite_trainable_layers_equal_torchvision(trainable):
    """torchvision's builder ignores the setting without pretrained weights; its extractor does not."""
    from torchvision.models.detection.ssdlite import _mobilenet_extractor

    ours = SSDLiteMobileNetV3Backbone(trainable)
    norm = SSDLITE_NORM
    theirs = _mobilenet_extractor(
        torchvision.models.mobilenet_v3_large(reduced_tail=True, norm_layer=norm), trainable, norm
    )
    count = lambda model: sum(p.numel() for p in model.parameters() if p.requires_grad)  # noqa: E731
    assert count(ours) == count(theirs)


def test_ssdlite_eval_matches_torchvision(ssdlite_pair):
    ours, reference = ssdlite_pair
    images = _scenes() + [torch.rand(3, 90, 150, generator=torch.Generator().manual_seed(2))]
    with torch.no_grad():
        assert_detections_equal(ours.eval()(images), reference.eval()(images))


def test_ssdlite_training_losses_match_torchvision(ssdlite_pair):
    ours, reference = ssdlite_pair
    images = _scenes(size=96)
    targets = _targets(2, 96)
    targets[1] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}  # an image without objects
    torch.manual_seed(0)
    actual = ours.train()(images, targets)
    torch.manual_seed(0)
    expected = reference.train()(images, targets)
    assert list(actual) == list(expected) == ["bbox_regression", "classification"]
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # VGG-16 at 300×300: about 10 s
def test_ssd300_eval_and_losses_match_torchvision(ssd300_pair):
    ours, reference = ssd300_pair
    images = _scenes()
    with torch.no_grad():
        assert_detections_equal(ours.eval()(images), reference.eval()(images))
    targets = _targets(2, 128)
    torch.manual_seed(0)
    actual = ours.train()(images, targets)
    torch.manual_seed(0)
    expected = reference.train()(images, targets)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-4, atol=1e-5)


def test_hard_negative_mining_keeps_three_negatives_per_positive():
    """The classification loss is the positives' cross-entropy plus that of the 3·N_pos hardest negatives: with the
    logits of every box equal but one hard negative, that negative is among those counted."""
    from zoo.models.detection.ssd import hard_negatives

    loss = torch.tensor([[0.1, 5.0, 0.2, 0.3, 0.4, 9.0, 0.05, 0.6]])
    positive = torch.tensor([[False, True, False, False, False, False, False, False]])
    assert hard_negatives(loss, positive, 3.0).tolist() == [[False, False, False, False, True, True, False, True]]


def test_a_training_step_lowers_the_loss():
    torch.manual_seed(0)
    model = ssdlite320_mobilenet_v3_large(num_classes=4, trainable_backbone_layers=6).train()
    images, targets = _scenes(size=64), _targets(2, 64)
    for target in targets:
        target["labels"] = target["labels"] % 3 + 1
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(3):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


# --- bad input ----------------------------------------------------------------------------------------------
def test_an_input_size_the_default_boxes_were_not_built_for_is_an_error():
    with pytest.raises(ValueError, match=r"built for 300×300 inputs.*size=512"):
        ssd300_vgg16(size=512)
    with pytest.raises(ValueError, match="built for 320×320"):
        ssdlite320_mobilenet_v3_large(size=(160, 160))
    # An SSD whose steps were fixed for 300 px, stretching its images to 320 px: its maps have other grids.
    lite = ssdlite320_mobilenet_v3_large(num_classes=3)
    model = SSD(lite.backbone, DefaultBoxGenerator(**SSD300_BOXES), (320, 320), 3, head=lite.head).eval()
    with pytest.raises(ValueError, match=r"built with steps \[8, 16, 32, 64, 100, 300\].*320×320"):
        model([torch.rand(3, 64, 64)])


def test_bad_arguments_and_targets_are_errors():
    with pytest.raises(ValueError, match="num_classes"):
        ssdlite320_mobilenet_v3_large(num_classes=1)
    with pytest.raises(ValueError, match="trainable_backbone_layers must be in"):
        ssdlite320_mobilenet_v3_large(trainable_backbone_layers=7)
    with pytest.raises(ValueError, match="scales: expected 3"):
        DefaultBoxGenerator([[2], [2]], scales=[0.1, 0.2])
    with pytest.raises(ValueError, match="steps: expected one positive step"):
        DefaultBoxGenerator([[2], [2]], steps=[8])
    model = ssdlite320_mobilenet_v3_large(num_classes=3).train()
    with pytest.raises(ValueError, match="needs targets"):
        model([torch.rand(3, 64, 64)])
    with pytest.raises(ValueError, match="image 0: label 0 is the background"):
        model([torch.rand(3, 64, 64)], [{"boxes": torch.tensor([[1.0, 1, 9, 9]]), "labels": torch.tensor([0])}])
    with pytest.raises(ValueError, match="image 0: boxes must have positive width"):
        model([torch.rand(3, 64, 64)], [{"boxes": torch.tensor([[1.0, 1, 1, 9]]), "labels": torch.tensor([1])}])
