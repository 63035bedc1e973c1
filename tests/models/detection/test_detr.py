"""DETR against Hugging Face transformers' DetrForObjectDetection (outputs after loading its randomised
state_dict, with and without padding masks), its Hungarian matcher and loss function, and the paper's matching
cost, set loss and post-processing written out here; the detection interface, bad input, and overfitting."""

import itertools
import math

import pytest
import torch
import torchvision
from reference_models import randomize_

import zoo
from zoo.data.synthetic import MEAN, STD, render_scenes
from zoo.layers import FrozenBatchNorm2d
from zoo.models.detection.backbone import backbone_body
from zoo.models.detection.batching import batch_images
from zoo.models.detection.detr import DETR, pixel_mask
from zoo.models.detection.detr_loss import detr_loss, detr_set_loss
from zoo.models.detection.detr_matcher import HungarianMatcher

# A narrow DETR (ResNet-18, d = 64, two layers each) and its HF twin: the same code paths at a fraction of the cost.
TINY = dict(num_queries=10, d_model=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=128)
TINY_HF = dict(
    use_timm_backbone=True, backbone="resnet18", use_pretrained_backbone=False, num_queries=10, d_model=64,
    encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
    encoder_ffn_dim=128, decoder_ffn_dim=128,
)  # fmt: skip


def tiny(num_classes=5, **kwargs):
    backbone = backbone_body("resnet18", out_indices=(-1,), trainable_layers=3, norm_layer=FrozenBatchNorm2d)
    return DETR(backbone, num_classes, **{**TINY, **kwargs})


def hf_detr(num_classes=5, **config):
    from transformers import DetrConfig, DetrForObjectDetection

    return DetrForObjectDetection(DetrConfig(num_labels=num_classes, **{**TINY_HF, **config}))


@pytest.fixture(scope="module")
def tiny_pair():
    reference = randomize_(hf_detr()).eval()
    ours = zoo.load_reference_weights(tiny(), reference.state_dict()).eval()
    return ours, reference


def padded_batch(generator, sizes=((128, 160), (96, 100))):
    images = [torch.randn(3, h, w, generator=generator) for h, w in sizes]
    batch = batch_images(images)
    return images, batch.tensors, pixel_mask(batch)


def assert_same_outputs(ours, expected):
    for key, name in (("pred_logits", "logits"), ("pred_boxes", "pred_boxes")):
        reference = getattr(expected, name)
        atol = 1e-5 * max(1.0, reference.abs().max().item())
        torch.testing.assert_close(ours[key], reference, rtol=1e-5, atol=atol)


def cxcywh_targets(generator, counts, num_classes=5):
    targets = []
    for count in counts:
        centre = 0.2 + 0.6 * torch.rand(count, 2, generator=generator)
        size = 0.05 + 0.3 * torch.rand(count, 2, generator=generator)
        labels = torch.randint(0, num_classes, (count,), generator=generator)
        targets.append({"labels": labels, "boxes": torch.cat([centre, size], dim=1)})
    return targets


def random_outputs(generator, num_images=2, num_queries=10, num_classes=5, layers=1):
    logits = torch.randn(layers, num_images, num_queries, num_classes + 1, generator=generator)
    boxes = torch.cat(
        [0.2 + 0.6 * torch.rand(layers, num_images, num_queries, 2, generator=generator),
         0.05 + 0.3 * torch.rand(layers, num_images, num_queries, 2, generator=generator)], dim=-1,
    )  # fmt: skip
    return logits, boxes


def scenes(num_images, size=64, objects=2, seed=0):
    """Normalised synthetic images and their detection targets (labels 1..10)."""
    data = render_scenes(num_images, size, objects, generator=torch.Generator().manual_seed(seed))
    images = (data.images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    targets = []
    for boxes, labels in zip(data.boxes, data.labels, strict=True):
        visible = boxes.any(dim=1)
        targets.append({"boxes": boxes[visible], "labels": labels[visible] + 1})
    return images, targets


# --- equal to transformers ----------------------------------------------------------------------------------------
def test_raw_outputs_equal_transformers_with_a_pixel_mask(tiny_pair):
    ours, reference = tiny_pair
    _, batch, mask = padded_batch(torch.Generator().manual_seed(0))
    assert mask is not None and not mask[1].all()
    with torch.no_grad():
        expected = reference(pixel_values=batch, pixel_mask=mask.long())
        assert_same_outputs(ours.forward_raw(batch, mask), expected)
        # The mask matters: without it the padded image's outputs differ.
        unmasked = ours.forward_raw(batch)["pred_logits"][1]
        assert not torch.allclose(unmasked, expected.logits[1], atol=1e-3)
        assert_same_outputs(ours.forward_raw(batch), reference(pixel_values=batch))


def test_detections_are_hfs_outputs_in_each_images_pixels(tiny_pair):
    ours, reference = tiny_pair
    images, batch, mask = padded_batch(torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(pixel_values=batch, pixel_mask=mask.long())
        detections = ours(images)
    assert len(detections) == 2
    for index, (image, found) in enumerate(zip(images, detections, strict=True)):
        assert set(found) == {"boxes", "scores", "labels"}
        assert found["boxes"].shape == (10, 4) and found["scores"].shape == found["labels"].shape == (10,)
        # The paper's PostProcess, written out: softmax, drop "no object", scale cxcywh by the image's own size.
        probabilities = expected.logits[index].softmax(-1)[:, :-1]
        scores, labels = probabilities.max(-1)
        height, width = image.shape[-2:]
        boxes = torchvision.ops.box_convert(expected.pred_boxes[index], "cxcywh", "xyxy")
        boxes = boxes * torch.tensor([width, height, width, height])
        torch.testing.assert_close(found["scores"], scores, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(found["labels"], labels)
        torch.testing.assert_close(found["boxes"], boxes, rtol=1e-5, atol=1e-4)


def test_detr_resnet50_equals_transformers():
    from zoo.reference import build_reference

    reference = randomize_(build_reference("detr_resnet50")).eval()
    ours = zoo.load_reference_weights(zoo.create_model("detr_resnet50"), reference.state_dict()).eval()
    assert sum(p.numel() for p in ours.parameters()) == 41_524_768
    _, batch, mask = padded_batch(torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert_same_outputs(ours.forward_raw(batch, mask), reference(pixel_values=batch, pixel_mask=mask.long()))


@pytest.mark.slow
def test_detr_resnet50_equals_transformers_at_800_px():
    from zoo.reference import build_reference

    reference = randomize_(build_reference("detr_resnet50")).eval()
    ours = zoo.load_reference_weights(zoo.create_model("detr_resnet50"), reference.state_dict()).eval()
    _, batch, mask = padded_batch(torch.Generator().manual_seed(3), sizes=((800, 1066), (800, 600)))
    with torch.no_grad():
        assert_same_outputs(ours.forward_raw(batch, mask), reference(pixel_values=batch, pixel_mask=mask.long()))


def test_backbone_freezes_the_stem_and_layer1_as_transformers():
    ours = tiny()
    frozen = {name.split(".")[1] for name, p in ours.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1", "layer1"}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in ours.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in ours.backbone.modules()) == 20  # ResNet-18's 20 BNs


def test_attention_layers_are_zoos_multihead_attention():
    from zoo.layers import MultiheadAttention

    attention = [m for m in tiny().modules() if isinstance(m, MultiheadAttention)]
    assert len(attention) == 2 + 2 * 2  # one per encoder layer, two per decoder layer


# --- matching -----------------------------------------------------------------------------------------------------
def paper_cost(logits, boxes, target):
    """eq. 1's pairwise cost, written out: −p̂(c) + 5 L1 − 2 GIoU (torchvision's GIoU)."""
    probabilities = logits.softmax(-1)
    corners = torchvision.ops.box_convert(boxes, "cxcywh", "xyxy")
    target_corners = torchvision.ops.box_convert(target["boxes"], "cxcywh", "xyxy")
    giou = torchvision.ops.generalized_box_iou(corners, target_corners)
    cost = torch.empty(len(boxes), len(target["boxes"]))
    for q, k in itertools.product(range(len(boxes)), range(len(target["boxes"]))):
        l1 = (boxes[q] - target["boxes"][k]).abs().sum()
        cost[q, k] = -probabilities[q, target["labels"][k]] + 5 * l1 - 2 * giou[q, k]
    return cost


def test_matching_minimises_the_papers_cost_by_brute_force():
    generator = torch.Generator().manual_seed(4)
    logits, boxes = random_outputs(generator, num_queries=6)
    targets = cxcywh_targets(generator, (3, 0))
    indices = HungarianMatcher()(logits[0], boxes[0], targets)
    cost = paper_cost(logits[0, 0], boxes[0, 0], targets[0])
    torch.testing.assert_close(HungarianMatcher().cost_matrix(logits[0, 0], boxes[0, 0], **{
        "labels": targets[0]["labels"], "target_boxes": targets[0]["boxes"]}), cost, rtol=1e-5, atol=1e-5)  # fmt: skip
    best = min(itertools.permutations(range(6), 3), key=lambda slots: sum(cost[q, k] for k, q in enumerate(slots)))
    slots, objects = indices[0]
    assert dict(zip(objects.tolist(), slots.tolist(), strict=True)) == dict(enumerate(best))
    assert slots.tolist() == sorted(slots.tolist())
    assert indices[1][0].numel() == indices[1][1].numel() == 0  # an image without objects


def test_matching_equals_transformers_hungarian_matcher():
    from transformers.loss.loss_for_object_detection import HungarianMatcher as HFMatcher

    generator = torch.Generator().manual_seed(5)
    logits, boxes = random_outputs(generator, num_images=3, num_queries=20)
    targets = cxcywh_targets(generator, (4, 1, 7))
    ours = HungarianMatcher()(logits[0], boxes[0], targets)
    hf_targets = [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in targets]
    theirs = HFMatcher(class_cost=1, bbox_cost=5, giou_cost=2)(
        {"logits": logits[0], "pred_boxes": boxes[0]}, hf_targets
    )
    for (slots, objects), (hf_slots, hf_objects) in zip(ours, theirs, strict=True):
        assert slots.tolist() == hf_slots.tolist() and objects.tolist() == hf_objects.tolist()


# --- loss ---------------------------------------------------------------------------------------------------------
def test_set_loss_is_the_papers_formula():
    generator = torch.Generator().manual_seed(6)
    logits, boxes = random_outputs(generator, num_queries=8)
    logits, boxes = logits[0], boxes[0]
    targets = cxcywh_targets(generator, (3, 2))
    indices = [(torch.tensor([1, 4, 6]), torch.tensor([2, 0, 1])), (torch.tensor([0, 7]), torch.tensor([1, 0]))]
    losses = detr_set_loss(logits, boxes, targets, indices, num_boxes=5.0)
    # Written out: weighted cross-entropy over every slot (w = 0.1 for "no object" = class 5), L1 and 1 − GIoU
    # over the matched pairs, divided by the number of objects, B = 5.
    numerator = denominator = l1 = giou = 0.0
    for image, (slots, objects) in enumerate(indices):
        matched = dict(zip(slots.tolist(), objects.tolist(), strict=True))
        for q in range(8):
            label = targets[image]["labels"][matched[q]].item() if q in matched else 5
            weight = 1.0 if q in matched else 0.1
            numerator += weight * -math.log(logits[image, q].softmax(-1)[label].item())
            denominator += weight
            if q in matched:
                box, target = boxes[image, q], targets[image]["boxes"][matched[q]]
                l1 += (box - target).abs().sum().item()
                corners = torchvision.ops.box_convert(torch.stack([box, target]), "cxcywh", "xyxy")
                giou += 1 - torchvision.ops.generalized_box_iou(corners[:1], corners[1:]).item()
    assert losses["loss_ce"].item() == pytest.approx(numerator / denominator, rel=1e-5)
    assert losses["loss_bbox"].item() == pytest.approx(5 * l1 / 5, rel=1e-5)
    assert losses["loss_giou"].item() == pytest.approx(2 * giou / 5, rel=1e-5)


def test_loss_with_auxiliary_layers_equals_transformers():
    from transformers import DetrConfig
    from transformers.loss.loss_for_object_detection import ForObjectDetectionLoss

    generator = torch.Generator().manual_seed(7)
    logits, boxes = random_outputs(generator, num_images=2, num_queries=12, layers=3)
    targets = cxcywh_targets(generator, (3, 5))
    outputs = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
    outputs["aux_outputs"] = [{"pred_logits": c, "pred_boxes": b} for c, b in zip(logits[:-1], boxes[:-1], strict=True)]
    ours = detr_loss(outputs, targets, HungarianMatcher())
    config = DetrConfig(num_labels=5, auxiliary_loss=True, decoder_layers=3)
    hf_targets = [{"class_labels": t["labels"], "boxes": t["boxes"]} for t in targets]
    total, theirs, _ = ForObjectDetectionLoss(logits[-1], hf_targets, "cpu", boxes[-1], config, logits, boxes)
    weights = {"loss_ce": 1, "loss_bbox": 5, "loss_giou": 2}
    expected = {name + suffix: weights[name] * theirs[name + suffix] for name in weights for suffix in ("", "_0", "_1")}
    assert set(ours) == set(expected)
    for name, value in expected.items():
        assert ours[name].item() == pytest.approx(value.item(), rel=1e-5), name
    assert sum(ours.values()).item() == pytest.approx(total.item(), rel=1e-5)


def test_loss_without_objects_trains_no_object_only():
    generator = torch.Generator().manual_seed(8)
    logits, boxes = random_outputs(generator)
    targets = cxcywh_targets(generator, (0, 0))
    losses = detr_loss({"pred_logits": logits[0], "pred_boxes": boxes[0]}, targets, HungarianMatcher())
    expected = torch.nn.functional.cross_entropy(logits[0].flatten(0, 1), torch.full((20,), 5))
    assert losses["loss_ce"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert losses["loss_bbox"].item() == losses["loss_giou"].item() == 0


# --- the detector interface ---------------------------------------------------------------------------------------
def test_train_mode_returns_the_loss_dict_with_auxiliary_terms():
    model = tiny(num_classes=11).train()
    images, targets = scenes(2)
    losses = model(images, targets)
    names = {f"loss_{term}{suffix}" for term in ("ce", "bbox", "giou") for suffix in ("", "_0")}
    assert set(losses) == names and all(v.ndim == 0 and v.isfinite() for v in losses.values())
    sum(losses.values()).backward()
    assert model.class_head.weight.grad is not None and model.backbone.layer4[0].conv1.conv.weight.grad is not None
    assert model.backbone.conv1.conv.weight.grad is None  # frozen
    assert set(tiny(num_classes=11, aux_loss=False).train()(images, targets)) == {"loss_ce", "loss_bbox", "loss_giou"}


class RecordingMatcher(HungarianMatcher):
    def __call__(self, logits, boxes, targets):
        self.targets = targets
        return super().__call__(logits, boxes, targets)


def test_targets_are_normalised_by_each_images_own_size():
    model = tiny(num_classes=3).train()
    images = [torch.randn(3, 64, 96), torch.randn(3, 32, 64)]
    targets = [
        {"boxes": torch.tensor([[0.0, 0.0, 48.0, 32.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[16.0, 8.0, 48.0, 24.0]]), "labels": torch.tensor([2])},
    ]
    model.matcher = RecordingMatcher()
    model(images, targets)
    # cxcywh as fractions of 96×64 and of 64×32, not of the padded 96×64 batch.
    torch.testing.assert_close(model.matcher.targets[0]["boxes"], torch.tensor([[0.25, 0.25, 0.5, 0.5]]))
    torch.testing.assert_close(model.matcher.targets[1]["boxes"], torch.tensor([[0.5, 0.5, 0.5, 0.5]]))


def test_eval_on_a_batch_tensor_keeps_every_query():
    model = tiny().eval()
    with torch.no_grad():
        detections = model(torch.randn(2, 3, 64, 64))
    for found in detections:
        assert found["boxes"].shape == (10, 4) and found["labels"].dtype == torch.int64
        assert (found["labels"] < 5).all() and ((found["scores"] > 0) & (found["scores"] <= 1)).all()
        assert (found["boxes"] >= 0).all() and (found["boxes"] <= 64).all()
        assert (found["boxes"][:, 2:] >= found["boxes"][:, :2]).all()


def test_bad_inputs_raise():
    model = tiny(num_classes=3)
    images, _ = scenes(2)
    model.train()
    with pytest.raises(ValueError, match="needs targets"):
        model(images)
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        model(images, [{"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]]), "labels": torch.tensor([3])}] * 2)
    with pytest.raises(ValueError, match="list of 2"):
        model(images, [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}])
    model.eval()
    with pytest.raises(ValueError, match="3 input channels"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(TypeError, match="float64"):
        model(torch.randn(1, 3, 64, 64, dtype=torch.float64))
    with pytest.raises(ValueError, match="pixel_mask"):
        model.forward_raw(torch.randn(1, 3, 64, 64), torch.ones(1, 32, 32))
    with pytest.raises(ValueError, match="num_classes"):
        tiny(num_classes=0)
    with pytest.raises(ValueError, match="all be 0"):
        HungarianMatcher(0, 0, 0)
    with pytest.raises(ValueError, match="no_object_weight"):
        tiny(no_object_weight=2)


def test_registered_with_its_reference():
    spec = zoo.model_spec("detr_resnet50")
    assert spec.task == "detection" and spec.reference == ("transformers", "DetrForObjectDetection")
    from zoo.reference import reference_label

    assert reference_label("detr_resnet50") == "transformers `DetrForObjectDetection`"


# --- learning -----------------------------------------------------------------------------------------------------
def overfit(model, images, targets, steps, lr):
    """AdamW on one fixed batch, gradients clipped at 0.1 as the paper; the total loss before and after."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    model.train()
    history = []
    for _ in range(steps + 1):
        loss = sum(model(images, targets).values())
        history.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
    return history[0], history[-1]


def test_loss_falls_on_two_scenes():
    images, targets = scenes(2)
    torch.manual_seed(0)
    first, last = overfit(tiny(num_classes=11, dropout=0.0), images, targets, steps=15, lr=1e-3)
    assert last < 0.75 * first, (first, last)


@pytest.mark.slow
def test_overfits_two_scenes_and_detects_them():
    images, targets = scenes(2)
    torch.manual_seed(0)
    model = tiny(num_classes=11, dropout=0.0)
    first, last = overfit(model, images, targets, steps=200, lr=1e-3)  # about 40 s on one core
    assert last < first / 10, (first, last)
    with torch.no_grad():
        detections = model.eval()(images)
    for target, found in zip(targets, detections, strict=True):
        confident = found["scores"] > 0.5
        iou = torchvision.ops.box_iou(target["boxes"], found["boxes"][confident])
        same_label = target["labels"][:, None] == found["labels"][confident][None, :]
        assert ((iou > 0.5) & same_label).any(dim=1).all(), (target, found)
