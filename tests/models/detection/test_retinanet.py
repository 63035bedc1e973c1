"""RetinaNet against torchvision.models.detection.retinanet: parameter counts, the same detections and training
losses after loading its weights, its anchors, its heads' old and new keys and initialisation; the small variant's
training step, errors for bad input, and overfitting synthetic scenes."""

import math

import pytest
import torch
from detection_helpers import assert_detections_equal, assert_losses_equal, n_params, synthetic_batch
from reference_models import randomize_
from torch import nn
from torchvision.models.detection import retinanet as tv_retinanet
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone as reference_resnet_fpn_backbone
from torchvision.ops.feature_pyramid_network import LastLevelP6P7 as ReferenceLastLevelP6P7

import zoo
from zoo.models.detection.batching import ImageList
from zoo.models.detection.retinanet import (
    RetinaNet,
    RetinaNetHead,
    octave_anchor_sizes,
    retinanet_resnet18_fpn,
    retinanet_resnet50_fpn,
)

LOSS_KEYS = ["classification", "bbox_regression"]
SIZE = 64  # min_size = max_size: images of 64 px on their long side keep their size; others are resized


def reference_backbone():
    """torchvision's RetinaNet backbone in its pretrained-backbone setting (frozen BN, layer2..4 trainable)."""
    return reference_resnet_fpn_backbone(
        backbone_name="resnet50",
        weights=None,
        trainable_layers=3,
        returned_layers=[2, 3, 4],
        extra_blocks=ReferenceLastLevelP6P7(256, 256),
    )


def pair_inputs():
    generator = torch.Generator().manual_seed(1)
    # The second image is resized (scale 64/56) and padded: the transform and the postprocessing both matter.
    images = [torch.rand(3, SIZE, SIZE, generator=generator), torch.rand(3, 40, 56, generator=generator)]
    targets = [
        {"boxes": torch.tensor([[5.0, 6.0, 40.0, 50.0], [20.0, 10.0, 60.0, 30.0]]), "labels": torch.tensor([3, 7])},
        {"boxes": torch.tensor([[2.0, 3.0, 30.0, 35.0], [20.0, 5.0, 50.0, 25.0]]), "labels": torch.tensor([1, 9])},
    ]
    return images, targets


# --- the whole model, with torchvision's weights ------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet50_pair():
    torch.manual_seed(0)  # module fixtures are set up before the autouse seed
    reference = randomize_(tv_retinanet.RetinaNet(reference_backbone(), 91, min_size=SIZE, max_size=SIZE))
    with torch.device("meta"):
        ours = retinanet_resnet50_fpn(min_size=SIZE, max_size=SIZE)
    zoo.load_reference_weights(ours.to_empty(device="cpu"), reference.state_dict())
    return ours, reference


def test_parameter_counts_match_torchvision():
    with torch.device("meta"):
        reference = tv_retinanet.RetinaNet(reference_backbone(), 91)
        ours = retinanet_resnet50_fpn()
        # Without pretrained weights torchvision uses ordinary BN and trains every stage.
        reference_bn = tv_retinanet.retinanet_resnet50_fpn(weights=None, weights_backbone=None)
        ours_bn = retinanet_resnet50_fpn(norm_layer=nn.BatchNorm2d, trainable_backbone_layers=5)
    assert n_params(ours) == n_params(reference) == 34_014_999
    assert n_params(ours, trainable=True) == n_params(reference, trainable=True)
    assert n_params(ours_bn) == n_params(reference_bn) == 34_068_119
    assert n_params(ours_bn, trainable=True) == n_params(reference_bn, trainable=True) == 34_068_119
    # The closed forms of the module docstring (C = 256, A = 9, K = 91).
    channels, anchors, classes = 256, 9, 91
    tower = 4 * (9 * channels**2 + channels)
    assert n_params(ours.head.classification_head) == tower + (9 * channels + 1) * anchors * classes == 4_248_115
    assert n_params(ours.head.regression_head) == tower + (9 * channels + 1) * 4 * anchors == 2_443_300


def test_eval_matches_torchvision(resnet50_pair):
    ours, reference = resnet50_pair
    ours.eval(), reference.eval()
    images, _ = pair_inputs()
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    assert max(len(d["boxes"]) for d in expected) == 300  # the detections_per_img cut bites
    assert_detections_equal(actual, expected)


def test_training_losses_match_torchvision(resnet50_pair):
    ours, reference = resnet50_pair
    ours.train(), reference.train()
    images, targets = pair_inputs()
    with torch.no_grad():
        expected, actual = reference(images, targets), ours(images, targets)
        assert list(actual) == LOSS_KEYS
        assert_losses_equal(actual, expected)
        # An image without objects: all its anchors are background, it adds nothing to the box loss.
        targets[0] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
        assert_losses_equal(ours(images, targets), reference(images, targets))


# --- the parts ----------------------------------------------------------------------------------------------------


def test_default_anchors_match_torchvision():
    reference = tv_retinanet._default_anchorgen()
    assert octave_anchor_sizes((32, 64, 128, 256, 512)) == reference.sizes
    ours = RetinaNet.default_anchor_generator()
    features = [torch.zeros(1, 1, s, s) for s in (8, 4, 2, 1, 1)]
    images = ImageList(torch.zeros(1, 3, 64, 64), [(64, 64)])
    from torchvision.models.detection.image_list import ImageList as ReferenceImageList

    expected = reference(ReferenceImageList(images.tensors, images.image_sizes), features)
    assert all(torch.equal(a, b) for a, b in zip(ours(images, features), expected, strict=True))
    assert ours.num_anchors_per_location() == [9] * 5


def test_head_loads_torchvision_keys_old_and_new_and_is_initialised_as_torchvision():
    torch.manual_seed(0)
    reference = randomize_(tv_retinanet.RetinaNetHead(32, 9, 5))
    new_keys = reference.state_dict()
    assert "classification_head.conv.3.0.weight" in new_keys
    old_keys = {}  # before version 2: a flat Sequential of convs and ReLUs, conv i at index 2 i
    for key, value in new_keys.items():
        parts = key.split(".")
        if parts[1] == "conv":
            key = ".".join([parts[0], "conv", str(2 * int(parts[2])), *parts[4:]])
        old_keys[key] = value
    features = [torch.randn(2, 32, s, s) for s in (8, 4)]
    expected = reference(features)
    for state_dict in (new_keys, old_keys):
        actual = zoo.load_reference_weights(RetinaNetHead(32, 9, 5), state_dict)(features)
        for key in ("cls_logits", "bbox_regression"):
            torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=1e-5)
    fresh = RetinaNetHead(256, 9, 91)
    bias = fresh.classification_head.cls_logits.bias
    assert torch.allclose(bias, torch.full_like(bias, -math.log(99)))  # the prior probability 0.01
    assert abs(fresh.regression_head.bbox_reg.weight.std().item() - 0.01) < 0.001
    assert not fresh.regression_head.bbox_reg.bias.any() and not fresh.classification_head.conv[0].conv.bias.any()


# --- the small variant and the interface --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model() -> RetinaNet:
    torch.manual_seed(0)
    return retinanet_resnet18_fpn(num_classes=11, fpn_out_channels=32)


def test_registered_builders():
    for name in ("retinanet_resnet50_fpn", "retinanet_resnet18_fpn"):
        assert name in zoo.list_models(task="detection")
    with torch.device("meta"):
        model = zoo.create_model("retinanet_resnet18_fpn", num_classes=11)
    assert n_params(model) == 19_388_871  # the builder's docstring
    assert model.anchor_generator.sizes[0] == (16, 20, 25)
    assert model.transform.min_size is None and model.transform.image_mean is None
    assert model.spec.reference is None and zoo.registry.model_spec("retinanet_resnet50_fpn").reference


def test_train_step_and_eval_outputs(tiny_model):
    model = tiny_model
    images, targets = synthetic_batch()
    losses = model.train()(images, targets)
    assert list(losses) == LOSS_KEYS
    assert all(value.dim() == 0 and math.isfinite(value.item()) for value in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None or p.grad.isfinite().all() for p in model.parameters())
    model.zero_grad()
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    with torch.no_grad():
        losses = model(images, empty)
    assert losses["bbox_regression"].item() == 0.0 and math.isfinite(losses["classification"].item())
    with torch.no_grad():
        detections = model.eval()(list(images))
    assert len(detections) == 2
    for detection in detections:
        assert set(detection) == {"boxes", "scores", "labels"}
        assert detection["boxes"].shape[1:] == (4,) and detection["labels"].dtype == torch.int64
        assert len(detection["boxes"]) == len(detection["scores"]) == len(detection["labels"]) <= 300
        assert (detection["scores"] > 0.05).all() and (detection["boxes"] >= 0).all()


@pytest.mark.parametrize(
    "bad_target, message",
    [
        ({"boxes": torch.tensor([[10.0, 10.0, 5.0, 20.0]]), "labels": torch.tensor([1])}, "x2 >= x1"),
        ({"boxes": torch.tensor([[10.0, 10.0, 10.0, 20.0]]), "labels": torch.tensor([1])}, "positive width"),
        ({"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "labels": torch.tensor([11])}, "0..10"),
        ({"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "labels": torch.tensor([0])}, "background"),
        ({"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]])}, "'labels'"),
    ],
)
def test_bad_targets_raise_naming_the_image(tiny_model, bad_target, message):
    images, targets = synthetic_batch()
    with pytest.raises(ValueError, match=message) as error:
        tiny_model.train()(images, [targets[0], bad_target])
    assert "image 1" in str(error.value)


def test_bad_calls_raise(tiny_model):
    model = tiny_model.train()
    images, targets = synthetic_batch()
    with pytest.raises(ValueError, match="targets"):
        model(images)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        model(images[0], targets)
    with torch.device("meta"):
        with pytest.raises(ValueError, match="num_classes"):
            retinanet_resnet18_fpn(num_classes=1)
        with pytest.raises(ValueError, match="anchor_sizes"):
            retinanet_resnet18_fpn(anchor_sizes=(16, 32))
        with pytest.raises(ValueError, match="score_thresh"):
            retinanet_resnet18_fpn(score_thresh=1.5)
        with pytest.raises(TypeError, match="AnchorGenerator"):
            retinanet_resnet18_fpn(anchor_generator="anchors")
        with pytest.raises(ValueError, match="out_channels"):
            RetinaNet(nn.Identity(), 5)


@pytest.mark.slow
def test_overfits_synthetic_scenes():
    """Two 64 px scenes of two shapes each: the summed loss falls at least fourfold in 40 Adam steps and the best
    detection of each image is one of its objects."""
    torch.manual_seed(0)
    model = retinanet_resnet18_fpn(num_classes=11, fpn_out_channels=64).train()
    images, targets = synthetic_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(40):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < history[0] / 4, history
    with torch.no_grad():
        detections = model.eval()(images)
    for detection, target in zip(detections, targets, strict=True):
        assert detection["labels"][0] in target["labels"]
