"""Faster R-CNN against torchvision.models.detection: the whole model with torchvision's weights (proposals,
detections, training losses from the same RNG state), each part on its own (transform, RPN, RoI heads, the
Fast R-CNN loss), torchvision's parameter counts, target validation, and overfitting synthetic scenes."""

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from reference_models import randomize_
from torch import nn
from torchvision.models.detection import faster_rcnn as tv_faster_rcnn
from torchvision.models.detection import roi_heads as tv_roi_heads
from torchvision.models.detection import rpn as tv_rpn
from torchvision.models.detection.anchor_utils import AnchorGenerator as ReferenceAnchorGenerator
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone as reference_resnet_fpn_backbone
from torchvision.models.detection.image_list import ImageList as ReferenceImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform as ReferenceTransform
from torchvision.ops import MultiScaleRoIAlign as ReferenceMultiScaleRoIAlign

import zoo
from zoo.data.synthetic import MEAN, STD, render_scenes
from zoo.models.detection.batching import ImageList
from zoo.models.detection.faster_rcnn import FasterRCNN, faster_rcnn_resnet18_fpn, faster_rcnn_resnet50_fpn
from zoo.models.detection.roi_heads import FastRCNNPredictor, RoIHeads, TwoMLPHead, fastrcnn_loss
from zoo.models.detection.rpn import RegionProposalNetwork, RPNHead
from zoo.models.detection.transform import GeneralizedRCNNTransform
from zoo.ops.anchors import AnchorGenerator
from zoo.ops.poolers import MultiScaleRoIAlign
from zoo.registry import model_task

LOSS_KEYS = ["loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def n_params(model: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def assert_detections_equal(actual: list[dict], expected: list[dict]) -> None:
    """Equal to 1e-4, and boxes to 1e-5 relative: RoIAlign's float32 rounding differs (zoo.ops.roi_align gathers what
    torchvision's kernel loops over), and decoding multiplies an offset's difference by exp(t_w) x the width."""
    assert len(actual) == len(expected)
    for ours, theirs in zip(actual, expected, strict=True):
        assert len(theirs["boxes"]) > 0  # a comparison of empty lists would prove nothing
        torch.testing.assert_close(ours["boxes"], theirs["boxes"], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(ours["scores"], theirs["scores"], rtol=0, atol=1e-4)
        assert torch.equal(ours["labels"], theirs["labels"])
        assert ours["labels"].dtype == torch.int64


def assert_losses_equal(actual: dict, expected: dict) -> None:
    assert list(actual) == list(expected)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-4, atol=1e-6)


def random_boxes(count: int, height: int, width: int, generator: torch.Generator, min_side: float = 2.0):
    corner = torch.rand(count, 2, generator=generator) * torch.tensor([width - min_side, height - min_side])
    size = min_side + torch.rand(count, 2, generator=generator) * torch.tensor([width, height]) * 0.6
    boxes = torch.cat([corner, corner + size], dim=1)
    return torch.minimum(boxes, torch.tensor([width, height, width, height], dtype=torch.float32))


# --- the whole model, with torchvision's weights ------------------------------------------------------------------

SIZE = 64  # min_size = max_size: images of 64 px on their long side keep their size; others are resized


@pytest.fixture(scope="module")
def resnet50_pair():
    """torchvision's Faster R-CNN (its pretrained-backbone setting: frozen BN, layer2..4 trainable), randomised,
    and ours with its state_dict."""
    torch.manual_seed(0)  # module fixtures are set up before the autouse seed
    reference = tv_faster_rcnn.FasterRCNN(
        reference_resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=3),
        num_classes=91,
        min_size=SIZE,
        max_size=SIZE,
    )
    randomize_(reference)
    with torch.device("meta"):
        ours = faster_rcnn_resnet50_fpn(min_size=SIZE, max_size=SIZE)
    zoo.load_reference_weights(ours.to_empty(device="cpu"), reference.state_dict())
    return ours, reference


def pair_inputs():
    generator = torch.Generator().manual_seed(1)
    # The second image is resized (scale 64/56) and padded: the transform and the postprocessing both matter.
    images = [torch.rand(3, SIZE, SIZE, generator=generator), torch.rand(3, 40, 56, generator=generator)]
    targets = [
        {"boxes": torch.tensor([[5.0, 6.0, 40.0, 50.0], [20.0, 10.0, 60.0, 30.0]]), "labels": torch.tensor([3, 7])},
        {"boxes": torch.tensor([[2.0, 3.0, 30.0, 35.0], [20.0, 5.0, 50.0, 25.0]]), "labels": torch.tensor([1, 9])},
    ]
    return images, targets


def test_parameter_counts_match_torchvision():
    with torch.device("meta"):
        # torchvision's setting for a pretrained backbone: frozen BN, 3 trainable stages.
        reference = tv_faster_rcnn.FasterRCNN(
            reference_resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=3), 91
        )
        ours = faster_rcnn_resnet50_fpn()
        # Without pretrained weights torchvision uses ordinary BN and trains every stage.
        reference_bn = tv_faster_rcnn.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
        ours_bn = faster_rcnn_resnet50_fpn(norm_layer=nn.BatchNorm2d, trainable_backbone_layers=5)
    assert n_params(ours) == n_params(reference) == 41_755_286
    assert n_params(ours, trainable=True) == n_params(reference, trainable=True)
    assert n_params(ours_bn) == n_params(reference_bn) == 41_808_406
    assert n_params(ours_bn, trainable=True) == n_params(reference_bn, trainable=True) == 41_808_406


def test_eval_matches_torchvision(resnet50_pair):
    ours, reference = resnet50_pair
    ours.eval(), reference.eval()
    images, _ = pair_inputs()
    proposals = {}
    hooks = [
        model.rpn.register_forward_hook(lambda module, args, output, key=key: proposals.__setitem__(key, output[0]))
        for key, model in (("ours", ours), ("reference", reference))
    ]
    try:
        with torch.no_grad():
            expected, actual = reference(images), ours(images)
    finally:
        for hook in hooks:
            hook.remove()
    for mine, theirs in zip(proposals["ours"], proposals["reference"], strict=True):
        assert len(theirs) > 20
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-4)
    assert_detections_equal(actual, expected)


def test_training_losses_match_torchvision(resnet50_pair):
    """The same RNG state before both calls: the transform's size draws and both samplers' draws coincide."""
    ours, reference = resnet50_pair
    ours.train(), reference.train()
    images, targets = pair_inputs()
    # The first image has no objects (all its anchors and proposals are background); the second is resized.
    targets[0] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    with torch.no_grad():
        torch.manual_seed(3)
        expected = reference(images, targets)
        torch.manual_seed(3)
        actual = ours(images, targets)
    assert list(actual) == LOSS_KEYS
    assert_losses_equal(actual, expected)


# --- the transform ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [False, True])
def test_transform_matches_torchvision(training):
    generator = torch.Generator().manual_seed(0)
    sizes = [(37, 53), (64, 40), (20, 90), (48, 48)]
    images = [torch.rand(3, h, w, generator=generator) for h, w in sizes]
    targets = [{"boxes": random_boxes(3, h, w, generator), "labels": torch.tensor([1, 2, 3])} for h, w in sizes]
    reference = ReferenceTransform((40, 48, 56), 80, IMAGENET_MEAN, IMAGENET_STD).train(training)
    ours = GeneralizedRCNNTransform((40, 48, 56), 80, IMAGENET_MEAN, IMAGENET_STD).train(training)
    torch.manual_seed(5)
    expected, expected_targets = reference(images, targets)
    torch.manual_seed(5)
    actual, actual_targets = ours(images, targets)
    assert actual.image_sizes == expected.image_sizes
    assert torch.equal(actual.tensors, expected.tensors)
    assert actual.tensors.shape[-2] % 32 == 0 and actual.tensors.shape[-1] % 32 == 0
    for mine, theirs, original in zip(actual_targets, expected_targets, targets, strict=True):
        assert torch.equal(mine["boxes"], theirs["boxes"])
        assert mine["boxes"] is not original["boxes"]  # the caller's targets are not modified
    detections = [{"boxes": random_boxes(5, h, w, generator)} for h, w in actual.image_sizes]
    reference.eval()
    expected_back = reference.postprocess([dict(d) for d in detections], expected.image_sizes, sizes)
    actual_back = ours.postprocess([dict(d) for d in detections], actual.image_sizes, sizes)
    for mine, theirs in zip(actual_back, expected_back, strict=True):
        assert torch.equal(mine["boxes"], theirs["boxes"])


def test_transform_without_resize_or_normalisation_only_pads():
    images = [torch.randn(3, 30, 50), torch.randn(3, 45, 20)]
    batch, _ = GeneralizedRCNNTransform(None, None, None, None)(images)
    assert batch.image_sizes == [(30, 50), (45, 20)]
    expected = torch.stack([F.pad(images[0], (0, 14, 0, 34)), F.pad(images[1], (0, 44, 0, 19))])
    assert torch.equal(batch.tensors, expected)


def test_transform_rejects_bad_arguments():
    with pytest.raises(ValueError, match="image_mean and image_std"):
        GeneralizedRCNNTransform(800, 1333, IMAGENET_MEAN, None)
    with pytest.raises(ValueError, match="min_size"):
        GeneralizedRCNNTransform(0, 1333)
    with pytest.raises(ValueError, match="max_size"):
        GeneralizedRCNNTransform(800, None)
    with pytest.raises(ValueError, match=r"images\[1\]"):
        GeneralizedRCNNTransform()([torch.rand(3, 8, 8), torch.rand(8, 8)])
    with pytest.raises(TypeError, match="floating-point"):
        GeneralizedRCNNTransform()([torch.zeros(3, 8, 8, dtype=torch.uint8)])


# --- the RPN on its own -----------------------------------------------------------------------------------------

CHANNELS = 8
LEVEL_SIZES = (16, 8, 4, 2, 1)  # strides 4..64 on a 64 x 64 padded batch
IMAGE_SIZES = [(64, 64), (50, 60)]


def random_features(generator: torch.Generator, batch: int = 2) -> dict[str, torch.Tensor]:
    names = ["0", "1", "2", "3", "pool"]
    return {
        name: torch.randn(batch, CHANNELS, s, s, generator=generator)
        for name, s in zip(names, LEVEL_SIZES, strict=True)
    }


def rpn_pair(pre_nms_top_n: dict, post_nms_top_n: dict):
    sizes, ratios = ((16,), (32,), (64,), (128,), (256,)), ((0.5, 1.0, 2.0),) * 5
    reference_head = randomize_(tv_rpn.RPNHead(CHANNELS, 3), seed=1)
    with torch.no_grad():  # offsets of a few tenths and logits of a few units: proposals that overlap and compete
        reference_head.bbox_pred.weight.mul_(5)
        reference_head.cls_logits.weight.mul_(20)
    reference = tv_rpn.RegionProposalNetwork(
        ReferenceAnchorGenerator(sizes, ratios), reference_head, 0.7, 0.3, 256, 0.5, pre_nms_top_n, post_nms_top_n, 0.7
    )
    head = zoo.load_reference_weights(RPNHead(CHANNELS, 3), reference_head.state_dict())
    ours = RegionProposalNetwork(
        AnchorGenerator(sizes, ratios), head, 0.7, 0.3, 256, 0.5, pre_nms_top_n, post_nms_top_n
    )
    return ours, reference


@pytest.mark.parametrize(
    "pre_nms_top_n, post_nms_top_n",
    [
        ({"training": 2000, "testing": 1000}, {"training": 2000, "testing": 1000}),  # Faster R-CNN's
        ({"training": 50, "testing": 40}, {"training": 60, "testing": 30}),  # both cuts bite
    ],
)
def test_rpn_matches_torchvision(pre_nms_top_n, post_nms_top_n):
    generator = torch.Generator().manual_seed(2)
    ours, reference = rpn_pair(pre_nms_top_n, post_nms_top_n)
    features = random_features(generator)
    padded = torch.zeros(2, 3, 64, 64)
    targets = [
        {"boxes": random_boxes(3, 64, 64, generator, min_side=6.0), "labels": torch.ones(3, dtype=torch.int64)},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},  # no objects: all background
    ]
    for training in (False, True):
        ours.train(training), reference.train(training)
        torch.manual_seed(7)
        expected, expected_losses = reference(ReferenceImageList(padded, IMAGE_SIZES), features, targets)
        torch.manual_seed(7)
        actual, actual_losses = ours(ImageList(padded, IMAGE_SIZES), features, targets)
        for mine, theirs in zip(actual, expected, strict=True):
            assert len(theirs) > 10
            torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)
        assert_losses_equal(actual_losses, expected_losses)
        assert set(actual_losses) == (set() if not training else {"loss_objectness", "loss_rpn_box_reg"})


def test_rpn_head_loads_torchvision_keys_old_and_new():
    reference = randomize_(tv_rpn.RPNHead(CHANNELS, 3))
    new_keys = reference.state_dict()
    assert "conv.0.0.weight" in new_keys
    old_keys = {key.replace("conv.0.0.", "conv."): value for key, value in new_keys.items()}  # before version 2
    features = [torch.randn(1, CHANNELS, s, s) for s in (8, 4)]
    expected = reference(features)
    for state_dict in (new_keys, old_keys):
        actual = zoo.load_reference_weights(RPNHead(CHANNELS, 3), state_dict)(features)
        for mine, theirs in zip(actual, expected, strict=True):
            for a, b in zip(mine, theirs, strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_rpn_head_initialisation():
    head = RPNHead(256, 3)
    assert n_params(head) == n_params(tv_rpn.RPNHead(256, 3)) == 593_935
    for conv in (head.conv.conv, head.cls_logits, head.bbox_pred):
        assert abs(conv.weight.std().item() - 0.01) < 0.001 and not conv.bias.any()


def test_rpn_needs_targets_in_training():
    ours, _ = rpn_pair({"training": 10, "testing": 10}, {"training": 10, "testing": 10})
    with pytest.raises(ValueError, match="targets"):
        ours.train()(ImageList(torch.zeros(2, 3, 64, 64), IMAGE_SIZES), random_features(torch.Generator()))


# --- the RoI heads on their own ---------------------------------------------------------------------------------

NUM_CLASSES = 5


def roi_heads_pair():
    pool_names = ["0", "1", "2", "3"]
    reference_head = tv_faster_rcnn.TwoMLPHead(CHANNELS * 49, 32)
    reference_predictor = tv_faster_rcnn.FastRCNNPredictor(32, NUM_CLASSES)
    randomize_(reference_head, seed=3), randomize_(reference_predictor, seed=4)
    with torch.no_grad():  # confident classes, boxes moved by a fraction of their size
        reference_predictor.cls_score.weight.mul_(10)
    reference = tv_roi_heads.RoIHeads(
        ReferenceMultiScaleRoIAlign(pool_names, 7, 2),
        reference_head,
        reference_predictor,
        0.5,
        0.5,
        512,
        0.25,
        None,
        0.05,
        0.5,
        100,
    )
    head = TwoMLPHead(CHANNELS * 49, 32)
    predictor = FastRCNNPredictor(32, NUM_CLASSES)
    head.load_state_dict(reference_head.state_dict())
    predictor.load_state_dict(reference_predictor.state_dict())
    return RoIHeads(MultiScaleRoIAlign(pool_names, 7, 2), head, predictor), reference


def test_roi_heads_match_torchvision():
    generator = torch.Generator().manual_seed(4)
    ours, reference = roi_heads_pair()
    features = random_features(generator)
    proposals = [random_boxes(300, h, w, generator) for h, w in IMAGE_SIZES]
    targets = [
        {"boxes": random_boxes(4, 64, 64, generator, min_side=8.0), "labels": torch.tensor([1, 4, 2, 1])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    ours.eval(), reference.eval()
    with torch.no_grad():
        expected, _ = reference(features, proposals, IMAGE_SIZES)
        actual, losses = ours(features, proposals, IMAGE_SIZES)
    assert losses == {}
    assert_detections_equal(actual, expected)
    assert max(len(d["boxes"]) for d in expected) == 100  # the detections_per_img cut bites
    ours.train(), reference.train()
    torch.manual_seed(9)
    _, expected_losses = reference(features, [p.clone() for p in proposals], IMAGE_SIZES, targets)
    torch.manual_seed(9)
    actual, actual_losses = ours(features, [p.clone() for p in proposals], IMAGE_SIZES, targets)
    assert actual == []
    assert_losses_equal(actual_losses, expected_losses)


def test_roi_heads_eval_without_proposals():
    ours, _ = roi_heads_pair()
    features = random_features(torch.Generator().manual_seed(0))
    with torch.no_grad():
        detections, _ = ours.eval()(
            features, [torch.zeros(0, 4), random_boxes(5, 64, 64, torch.Generator())], IMAGE_SIZES
        )
    assert detections[0]["boxes"].shape == (0, 4) and detections[0]["labels"].dtype == torch.int64


def test_fastrcnn_loss_matches_torchvision():
    generator = torch.Generator().manual_seed(0)
    for counts in ([7, 5], [0, 6], [3]):
        total = sum(counts)
        logits = torch.randn(total, NUM_CLASSES, generator=generator)
        regression = torch.randn(total, 4 * NUM_CLASSES, generator=generator)
        labels = [torch.randint(0, NUM_CLASSES, (n,), generator=generator) for n in counts]
        targets = [torch.randn(n, 4, generator=generator) * 0.3 for n in counts]
        expected = tv_roi_heads.fastrcnn_loss(logits, regression, labels, targets)
        actual = fastrcnn_loss(logits, regression, labels, targets)
        for mine, theirs in zip(actual, expected, strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-7)


# --- the interface ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model() -> FasterRCNN:
    """The small-image ResNet-18 variant, narrow, with 50 proposals in eval: every code path, at a fraction of
    the cost."""
    torch.manual_seed(0)
    return faster_rcnn_resnet18_fpn(
        num_classes=11, fpn_out_channels=32, representation_size=64, rpn_post_nms_top_n_test=50
    )


@functools.cache
def _scenes(num_images: int, size: int, objects: int, seed: int):
    return render_scenes(num_images, size, objects, generator=torch.Generator().manual_seed(seed))


def synthetic_batch(num_images: int = 2, size: int = 64, objects: int = 2, seed: int = 0):
    scenes = _scenes(num_images, size, objects, seed)
    images = (scenes.images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    targets = []
    for boxes, labels in zip(scenes.boxes, scenes.labels, strict=True):
        visible = boxes.any(dim=1)
        targets.append({"boxes": boxes[visible], "labels": labels[visible] + 1})
    return images, targets


def test_registered_builders():
    for name in ("faster_rcnn_resnet50_fpn", "faster_rcnn_resnet18_fpn", "faster_rcnn_mobilenet_v3_large_fpn"):
        assert model_task(name) == "detection"
        assert name in zoo.list_models(task="detection")
    with torch.device("meta"):
        model = zoo.create_model("faster_rcnn_mobilenet_v3_large_fpn", num_classes=11)
    assert model.roi_heads.box_predictor.cls_score.out_features == 11
    assert model.rpn.anchor_generator.sizes == ((16,), (32,), (64,), (128,), (256,))
    assert model.transform.min_size is None and model.transform.image_mean is None


def test_mobilenet_variant_runs():
    model = zoo.create_model(
        "faster_rcnn_mobilenet_v3_large_fpn",
        num_classes=11,
        fpn_out_channels=16,
        representation_size=32,
        rpn_post_nms_top_n_test=20,
    )
    images, targets = synthetic_batch()
    losses = model.train()(images, targets)
    assert list(losses) == LOSS_KEYS and all(math.isfinite(value.item()) for value in losses.values())
    with torch.no_grad():
        detections = model.eval()(images)
    assert [set(d) for d in detections] == [{"boxes", "scores", "labels"}] * 2


def test_train_step_and_eval_outputs(tiny_model):
    model = tiny_model
    images, targets = synthetic_batch()
    targets[1] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}  # an empty image
    losses = model.train()(images, targets)
    assert list(losses) == LOSS_KEYS
    assert all(value.dim() == 0 and math.isfinite(value.item()) for value in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None or p.grad.isfinite().all() for p in model.parameters())
    # Only empty images: every anchor and proposal is background, no box is regressed.
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    with torch.no_grad():
        losses = model(images, empty)
    assert losses["loss_box_reg"].item() == losses["loss_rpn_box_reg"].item() == 0.0
    assert math.isfinite(losses["loss_classifier"].item())
    with torch.no_grad():
        detections = model.eval()(list(images))
    assert len(detections) == 2
    for detection in detections:
        assert set(detection) == {"boxes", "scores", "labels"}
        assert detection["boxes"].shape[1:] == (4,) and detection["labels"].dtype == torch.int64
        assert len(detection["boxes"]) == len(detection["scores"]) == len(detection["labels"]) <= 100
        assert ((detection["labels"] >= 1) & (detection["labels"] < 11)).all()


@pytest.mark.parametrize(
    "bad_target, message",
    [
        ({"boxes": torch.tensor([[10.0, 10.0, 5.0, 20.0]]), "labels": torch.tensor([1])}, "x2 >= x1"),
        ({"boxes": torch.tensor([[10.0, 10.0, 10.0, 20.0]]), "labels": torch.tensor([1])}, "positive width"),
        ({"boxes": torch.tensor([[1.0, 2.0, 3.0]]), "labels": torch.tensor([1])}, r"\[N, 4\]"),
        ({"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "labels": torch.tensor([11])}, "0..10"),
        ({"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "labels": torch.tensor([1, 2])}, "shape"),
        ({"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "labels": torch.tensor([1.0])}, "integers"),
        ({"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]])}, "'labels'"),
    ],
)
def test_bad_targets_raise_naming_the_image(tiny_model, bad_target, message):
    model = tiny_model.train()
    images, targets = synthetic_batch()
    with pytest.raises(ValueError, match=message) as error:
        model(images, [targets[0], bad_target])
    assert "image 1" in str(error.value)


def test_bad_calls_raise(tiny_model):
    model = tiny_model.train()
    images, targets = synthetic_batch()
    with pytest.raises(ValueError, match="targets"):
        model(images)
    with pytest.raises(ValueError, match="one per image"):
        model(images, targets[:1])
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        model(images[0], targets)
    with torch.device("meta"):
        with pytest.raises(ValueError, match="num_classes"):
            faster_rcnn_resnet18_fpn(num_classes=1)
        with pytest.raises(ValueError, match="anchor_sizes"):
            faster_rcnn_resnet18_fpn(anchor_sizes=(16, 32))


@pytest.mark.slow
def test_overfits_synthetic_scenes():
    """Two 64 px scenes of two shapes each: the summed loss falls at least fourfold in 30 SGD steps (about 3.5 to
    0.5 here; it fluctuates from step to step, hence the margin)."""
    torch.manual_seed(0)
    model = faster_rcnn_resnet18_fpn(num_classes=11, fpn_out_channels=64, representation_size=128).train()
    images, targets = synthetic_batch()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    history = []
    for _ in range(30):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < history[0] / 4, history
    with torch.no_grad():
        detections = model.eval()(images)
    for detection, target in zip(detections, targets, strict=True):  # the best detection is a true object
        assert detection["labels"][0] in target["labels"]
