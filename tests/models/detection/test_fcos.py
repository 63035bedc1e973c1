"""FCOS against torchvision.models.detection.fcos: parameter counts, the same detections and training losses after
loading its weights (boxes on two pyramid levels, an image without objects), the point assignment, the heads'
keys; the small variant's training step, errors for bad input, and overfitting synthetic scenes."""

import math

import pytest
import torch
from detection_helpers import assert_detections_equal, assert_losses_equal, n_params, synthetic_batch
from reference_models import randomize_
from torch import nn
from torchvision.models.detection import fcos as tv_fcos
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone as reference_resnet_fpn_backbone
from torchvision.ops.feature_pyramid_network import LastLevelP6P7 as ReferenceLastLevelP6P7

import zoo
from zoo.models.detection.fcos import FCOS, FCOSHead, fcos_resnet18_fpn, fcos_resnet50_fpn
from zoo.ops.anchors import AnchorGenerator

LOSS_KEYS = ["classification", "bbox_regression", "bbox_ctrness"]
SIZE = 128  # boxes up to 120 px: their longest side distances fall in P3's range (0, 64) and P4's (64, 128)
SCORE_THRESH = 0.01  # random weights score about sqrt(0.5 · 0.01): under FCOS's 0.2 every candidate would drop


def reference_backbone():
    return reference_resnet_fpn_backbone(
        backbone_name="resnet50",
        weights=None,
        trainable_layers=3,
        returned_layers=[2, 3, 4],
        extra_blocks=ReferenceLastLevelP6P7(256, 256),
    )


@pytest.fixture(scope="module")
def resnet50_pair():
    torch.manual_seed(0)  # module fixtures are set up before the autouse seed
    reference = tv_fcos.FCOS(reference_backbone(), 91, min_size=SIZE, max_size=SIZE, score_thresh=SCORE_THRESH)
    randomize_(reference)
    with torch.device("meta"):
        ours = fcos_resnet50_fpn(min_size=SIZE, max_size=SIZE, score_thresh=SCORE_THRESH)
    zoo.load_reference_weights(ours.to_empty(device="cpu"), reference.state_dict())
    return ours, reference


def pair_inputs():
    generator = torch.Generator().manual_seed(1)
    images = [torch.rand(3, SIZE, SIZE, generator=generator), torch.rand(3, 80, 112, generator=generator)]
    targets = [
        # Large and small boxes, two nested (a point inside both takes the smaller), one overlapping the border.
        {
            "boxes": torch.tensor(
                [
                    [5.0, 6.0, 125.0, 110.0],
                    [20.0, 10.0, 60.0, 50.0],
                    [30.0, 20.0, 50.0, 40.0],
                    [90.0, 70.0, 128.0, 128.0],
                ]
            ),
            "labels": torch.tensor([3, 7, 2, 5]),
        },
        {"boxes": torch.tensor([[2.0, 3.0, 60.0, 70.0], [40.0, 5.0, 100.0, 25.0]]), "labels": torch.tensor([1, 9])},
    ]
    return images, targets


def test_parameter_counts_match_torchvision():
    with torch.device("meta"):
        reference = tv_fcos.FCOS(reference_backbone(), 91)
        ours = fcos_resnet50_fpn()
        reference_bn = tv_fcos.fcos_resnet50_fpn(weights=None, weights_backbone=None)
        ours_bn = fcos_resnet50_fpn(norm_layer=nn.BatchNorm2d, trainable_backbone_layers=5)
    assert n_params(ours) == n_params(reference) == 32_269_600
    assert n_params(ours, trainable=True) == n_params(reference, trainable=True)
    assert n_params(ours_bn) == n_params(reference_bn) == 32_322_720
    assert n_params(ours_bn, trainable=True) == n_params(reference_bn, trainable=True) == 32_322_720
    channels, classes = 256, 91
    tower = 4 * (9 * channels**2 + 3 * channels)
    assert n_params(ours.head.classification_head) == tower + (9 * channels + 1) * classes == 2_572_123
    assert n_params(ours.head.regression_head) == tower + (9 * channels + 1) * 5 == 2_373_893


def test_eval_matches_torchvision(resnet50_pair):
    ours, reference = resnet50_pair
    ours.eval(), reference.eval()
    images, _ = pair_inputs()
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    assert max(len(d["boxes"]) for d in expected) == 100  # the detections_per_img cut bites
    assert_detections_equal(actual, expected)


def test_training_losses_match_torchvision(resnet50_pair):
    ours, reference = resnet50_pair
    ours.train(), reference.train()
    images, targets = pair_inputs()
    with torch.no_grad():
        expected, actual = reference(images, targets), ours(images, targets)
        assert list(actual) == LOSS_KEYS
        assert_losses_equal(actual, expected)
        targets[1] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
        assert_losses_equal(ours(images, targets), reference(images, targets))


def test_points_are_assigned_as_torchvision_assigns_them(resnet50_pair):
    """The matched box of every point, read off torchvision's head loss (which receives them)."""
    ours, reference = resnet50_pair
    images, targets = pair_inputs()
    seen = []
    original = reference.head.compute_loss

    def recording(targets, head_outputs, anchors, matched_idxs):
        seen.extend(matched_idxs)
        return original(targets, head_outputs, anchors, matched_idxs)

    reference.head.compute_loss = recording
    try:
        with torch.no_grad():
            reference.train()(images, targets)
    finally:
        del reference.head.compute_loss
    batch, scaled = ours.transform(images, [dict(t) for t in targets])
    features = list(ours.backbone(batch.tensors).values())
    anchors = ours.anchor_generator(batch, features)
    level_sizes = [f.shape[-2] * f.shape[-1] for f in features]
    for target, image_anchors, expected in zip(scaled, anchors, seen, strict=True):
        matched = ours.match(target["boxes"], image_anchors, level_sizes)
        assert torch.equal(matched, expected)
        assert len(matched.unique()) > 2  # several boxes are assigned, not just the background
    assert (seen[0][level_sizes[0] :] >= 0).any()  # the large box lands on P4


def test_head_loads_torchvision_keys_and_is_initialised_as_torchvision():
    torch.manual_seed(0)
    reference = randomize_(tv_fcos.FCOSHead(32, 1, 5))
    assert "classification_head.conv.9.weight" in reference.state_dict()  # the fourth conv, flat Sequential
    features = [torch.randn(2, 32, s, s) for s in (8, 4)]
    expected = reference(features)
    actual = zoo.load_reference_weights(FCOSHead(32, 1, 5), reference.state_dict())(features)
    for key in ("cls_logits", "bbox_regression", "bbox_ctrness"):
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=1e-5)
    fresh = FCOSHead(256, 1, 91)
    bias = fresh.classification_head.cls_logits.bias
    assert torch.allclose(bias, torch.full_like(bias, -math.log(99)))
    assert (
        isinstance(fresh.regression_head.conv[0].bn, nn.GroupNorm) and fresh.regression_head.conv[0].bn.num_groups == 32
    )
    assert not fresh.regression_head.bbox_ctrness.bias.any()


# --- the small variant and the interface --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model() -> FCOS:
    torch.manual_seed(0)
    return fcos_resnet18_fpn(num_classes=11, fpn_out_channels=32)


def test_registered_builders():
    with torch.device("meta"):
        model = zoo.create_model("fcos_resnet18_fpn", num_classes=11)
    assert n_params(model) == 19_118_672  # the builder's docstring
    assert model.anchor_generator.sizes == ((8,), (16,), (32,), (64,), (128,))
    assert model.transform.min_size is None and model.transform.image_mean is None
    assert "fcos_resnet50_fpn" in zoo.list_models(task="detection")


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
    assert losses["bbox_regression"].item() == losses["bbox_ctrness"].item() == 0.0
    with torch.no_grad():
        detections = model.eval()(list(images))
    for detection in detections:
        assert set(detection) == {"boxes", "scores", "labels"} and detection["labels"].dtype == torch.int64
        assert len(detection["boxes"]) <= 100 and (detection["scores"] > 0.2).all()


def test_bad_input_raises(tiny_model):
    images, targets = synthetic_batch()
    bad = {"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "labels": torch.tensor([0])}
    with pytest.raises(ValueError, match="background") as error:
        tiny_model.train()(images, [targets[0], bad])
    assert "image 1" in str(error.value)
    with torch.device("meta"):
        with pytest.raises(ValueError, match="one anchor"):
            fcos_resnet18_fpn(anchor_generator=AnchorGenerator(((8, 16),) * 5, ((1.0,),) * 5))
        with pytest.raises(ValueError, match="GroupNorm"):
            fcos_resnet18_fpn(fpn_out_channels=48)
        with pytest.raises(ValueError, match="center_sampling_radius"):
            fcos_resnet18_fpn(center_sampling_radius=0)
        with pytest.raises(TypeError, match="fg_iou_thresh"):
            fcos_resnet18_fpn(fg_iou_thresh=0.5)


@pytest.mark.slow
def test_overfits_synthetic_scenes():
    """Two 64 px scenes of two shapes each: the summed loss falls at least threefold in 40 Adam steps and the best
    detection of each image is one of its objects."""
    torch.manual_seed(0)
    model = fcos_resnet18_fpn(num_classes=11, fpn_out_channels=64).train()
    images, targets = synthetic_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(40):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < history[0] / 3, history
    with torch.no_grad():
        detections = model.eval()(images)
    for detection, target in zip(detections, targets, strict=True):
        assert len(detection["labels"]) and detection["labels"][0] in target["labels"]
