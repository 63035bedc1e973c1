"""CenterNet (ResNet-18, msra_resnet.py) against closed forms: parameter count, the official layer facts,
hand-computed targets/losses/decoding, an encode → decode round trip, and learning on synthetic scenes."""

import functools
import math

import pytest
import torch
import torchvision
from torch import nn

import zoo
from zoo.data.synthetic import MEAN, STD, render_scenes
from zoo.layers import ConvNormAct
from zoo.models.base import FeatureInfo
from zoo.models.detection.centernet import (
    CenterNet,
    centernet_decode,
    centernet_loss,
    centernet_resnet18,
    centernet_targets,
)


@functools.cache
def full_model(num_classes):
    """Built once per class count: the tests below only read it."""
    return centernet_resnet18(num_classes=num_classes).eval()


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def closed_form_params(num_classes):
    """torchvision's ResNet-18 without its fc, plus the upsampling and heads counted by formula."""
    backbone = sum(p.numel() for n, p in torchvision.models.resnet18().named_parameters() if not n.startswith("fc"))
    widths = [512, 256, 256, 256]
    deconvs = sum(4 * 4 * c_in * c_out + 2 * c_out for c_in, c_out in zip(widths[:-1], widths[1:], strict=True))
    hidden = 3 * 3 * 256 * 64 + 64  # the 3×3 conv (with bias) of each head
    finals = sum(64 * out + out for out in (num_classes, 2, 2))
    return backbone + deconvs + 3 * hidden + finals


class TinyBackbone(nn.Module):
    """Five stride-2 conv-BN-ReLU layers: a stride-32 feature map for quick checks."""

    def __init__(self, width=16):
        super().__init__()
        self.body = nn.Sequential(*(ConvNormAct(3 if i == 0 else width, width, 3, stride=2) for i in range(5)))
        self.feature_info = FeatureInfo([{"num_chs": width, "reduction": 32, "module": "body"}])
        self.in_chans = 3

    def forward(self, x):
        return [self.body(x)]


def tiny_centernet(num_classes=11):
    return CenterNet(TinyBackbone(), num_classes, upsampling_channels=(32, 32, 32), head_width=16)


@functools.cache
def synthetic_batch(num_images, objects_per_image, seed=0):
    scenes = render_scenes(num_images, 64, objects_per_image, generator=torch.Generator().manual_seed(seed))
    images = (scenes.images - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    targets = []
    for boxes, labels in zip(scenes.boxes, scenes.labels, strict=True):
        visible = (boxes != 0).any(dim=1)
        targets.append({"boxes": boxes[visible], "labels": labels[visible] + 1})
    return images, targets


def published_radius(h, w, o):
    """CornerNet/CenterNet's published gaussian_radius, written out by hand (roots (b + sqrt(b² - 4ac)) / 2)."""
    s, p = h + w, h * w
    quadratics = [(1, s, p * (1 - o) / (1 + o)), (4, 2 * s, (1 - o) * p), (4 * o, -2 * o * s, (o - 1) * p)]
    return min((b + math.sqrt(b * b - 4 * a * c)) / 2 for a, b, c in quadratics)


# --- architecture -------------------------------------------------------------------------------------------


def test_parameter_count_is_the_issue_figure_and_the_closed_form():
    assert closed_form_params(80) == 15_820_372
    assert n_params(full_model(80)) == 15_820_372
    assert n_params(zoo.create_model("centernet_resnet18", num_classes=11)) == closed_form_params(11)


def test_registered_as_detection():
    assert "centernet_resnet18" in zoo.list_models(task="detection")
    assert "centernet_resnet18" not in zoo.list_models(task="classification")


def test_official_layer_facts():
    model = full_model(11)
    deconvs = [m for m in model.upsampling.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(d.in_channels, d.out_channels) for d in deconvs] == [(512, 256), (256, 256), (256, 256)]
    for d in deconvs:
        assert (d.kernel_size, d.stride, d.padding, d.output_padding, d.bias) == ((4, 4), (2, 2), (1, 1), (0, 0), None)
    norms = [m for m in model.upsampling.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 3 and all(m.momentum == 0.1 for m in norms)
    for head, out in ((model.heatmap_head, 11), (model.size_head, 2), (model.offset_head, 2)):
        convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
        assert [(c.kernel_size, c.out_channels, c.bias is not None) for c in convs] == [
            ((3, 3), 64, True),
            ((1, 1), out, True),
        ]
        assert any(isinstance(m, nn.ReLU) for m in head.modules())


def test_heatmap_bias_is_the_prior():
    bias = full_model(80).heatmap_head[-1].bias.detach()
    assert bias.shape == (80,)
    torch.testing.assert_close(bias, torch.full((80,), -2.19))
    assert abs(torch.sigmoid(bias[0]).item() - 0.1) < 1e-3


def test_output_shapes_are_stride_4():
    model = tiny_centernet(num_classes=5).eval()
    with torch.no_grad():
        out = model.forward_heads(torch.randn(2, 3, 64, 96))
    assert out["heatmap"].shape == (2, 5, 16, 24)
    assert out["size"].shape == out["offset"].shape == (2, 2, 16, 24)


def test_full_model_forward_shapes():
    model = full_model(11)
    with torch.no_grad():
        out = model.forward_heads(torch.randn(1, 3, 32, 64))
    assert out["heatmap"].shape == (1, 11, 8, 16)
    assert model.stride == 4


@pytest.mark.parametrize("size", [(60, 64), (64, 48), (16, 32)])
def test_input_not_a_multiple_of_32_raises(size):
    with pytest.raises(ValueError, match="multiples of 32"):
        tiny_centernet().eval()(torch.randn(1, 3, *size))


# --- targets, loss, decoding ---------------------------------------------------------------------------------

# One box, hand-encoded: [10, 14, 42, 31] / 4 = [2.5, 3.5, 10.5, 7.75] → centre (6.5, 5.625), peak (6, 5),
# offset (0.5, 0.625), size (w, h) = (8, 4.25) cells; published radius for ⌈h⌉ = 5, ⌈w⌉ = 8 is 1.69 → 1, σ = 0.5.
ONE_BOX = [{"boxes": torch.tensor([[10.0, 14.0, 42.0, 31.0]]), "labels": torch.tensor([3])}]


def test_targets_single_object_by_hand():
    assert int(published_radius(5, 8, 0.7)) == 1
    encoded = centernet_targets(ONE_BOX, num_classes=4, output_size=(16, 16))
    assert encoded["peak"].tolist() == [[6, 5]]
    torch.testing.assert_close(encoded["offset"], torch.tensor([[0.5, 0.625]]))
    torch.testing.assert_close(encoded["size"], torch.tensor([[8.0, 4.25]]))
    assert encoded["mask"].tolist() == [True] and encoded["batch_index"].tolist() == [0]
    expected = torch.zeros(1, 4, 16, 16)
    sigma2 = 0.5**2
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            expected[0, 3, 5 + dy, 6 + dx] = math.exp(-(dx * dx + dy * dy) / (2 * sigma2))
    torch.testing.assert_close(encoded["heatmap"], expected)


def test_targets_corrected_radius_is_smaller():
    # Corrected geometry: case 2's root (1 - o) p / (s + sqrt(s² - 4 (1 - o) p)) = 12 / (13 + 11) = 0.5 → r = 0.
    encoded = centernet_targets(ONE_BOX, num_classes=4, output_size=(16, 16), published_radius=False)
    assert encoded["heatmap"].sum().item() == 1.0


def test_targets_clip_like_the_official_loader():
    targets = [
        {"boxes": torch.tensor([[40.0, 0.0, 64.0, 64.0], [70.0, 10.0, 90.0, 20.0]]), "labels": torch.tensor([0, 1])}
    ]
    encoded = centernet_targets(targets, num_classes=2, output_size=(16, 16))
    # [10, 0, 16, 16] clipped to [10, 0, 15, 15]; the second box lies right of the map and is masked out.
    torch.testing.assert_close(encoded["size"][0], torch.tensor([5.0, 15.0]))
    assert encoded["mask"].tolist() == [True, False]
    assert encoded["heatmap"][0, 1].sum() == 0


def test_loss_single_object_by_hand():
    encoded = centernet_targets(ONE_BOX, num_classes=4, output_size=(16, 16))
    outputs = {
        "heatmap": torch.zeros(1, 4, 16, 16),
        "size": torch.zeros(1, 2, 16, 16),
        "offset": torch.zeros(1, 2, 16, 16),
    }
    outputs["size"][0, :, 5, 6] = torch.tensor([7.0, 5.0])  # |7 - 8| + |5 - 4.25| = 1.75
    outputs["size"][0, :, 0, 0] = 100.0  # not at a peak: ignored
    losses = centernet_loss(outputs, encoded)
    assert set(losses) == {"loss_heatmap", "loss_size", "loss_offset"}
    torch.testing.assert_close(losses["loss_size"], torch.tensor(0.1 * 1.75))
    torch.testing.assert_close(losses["loss_offset"], torch.tensor(0.5 + 0.625))
    # Logits 0 → p = 0.5: positive term 0.25·log 2, negatives Σ (1 - Y)^4 · 0.25 · log 2, one positive.
    y = encoded["heatmap"]
    expected = 0.25 * math.log(2) * (1 + ((1 - y) ** 4)[y < 1].sum().item())
    assert abs(losses["loss_heatmap"].item() - expected) < 1e-4


def test_decode_single_object_by_hand():
    logits = torch.full((1, 4, 16, 16), -10.0)
    logits[0, 3, 5, 6] = 2.0
    size, offset = torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 16, 16)
    size[0, :, 5, 6] = torch.tensor([8.0, 4.25])
    offset[0, :, 5, 6] = torch.tensor([0.5, 0.625])
    (detections,) = centernet_decode(logits, size, offset)
    assert len(detections["boxes"]) == 100  # the paper keeps the top 100
    torch.testing.assert_close(detections["boxes"][0], torch.tensor([10.0, 14.0, 42.0, 31.0]))
    assert detections["labels"][0].item() == 3 and detections["labels"].dtype == torch.int64
    assert abs(detections["scores"][0].item() - 1 / (1 + math.exp(-2))) < 1e-6
    assert (detections["scores"][1:] <= 1 / (1 + math.exp(10)) + 1e-9).all()


def test_decode_keeps_only_3x3_peaks():
    logits = torch.full((1, 1, 8, 8), -20.0)
    logits[0, 0, 2, 2], logits[0, 0, 2, 3], logits[0, 0, 6, 6] = 3.0, 2.0, 1.0  # (2, 3) is beside a higher cell
    zeros = torch.zeros(1, 2, 8, 8)
    (detections,) = centernet_decode(logits, zeros, zeros, score_threshold=0.5)
    torch.testing.assert_close(detections["boxes"], torch.tensor([[8.0, 8.0, 8.0, 8.0], [24.0, 24.0, 24.0, 24.0]]))


def random_targets(generator, num_images, output_size=16, stride=4, num_classes=5):
    """Boxes inside [0, W - 4] (so that clipping leaves them alone) with distinct peak cells per image."""
    targets = []
    for _ in range(num_images):
        count = int(torch.randint(0, 6, (), generator=generator))
        cells = torch.randperm((output_size - 2) ** 2, generator=generator)[:count]
        peak = torch.stack((cells % (output_size - 2), cells // (output_size - 2)), dim=1) + 1.0
        centre = peak + torch.rand(count, 2, generator=generator) * 0.99
        room = torch.minimum(centre, (output_size - 1) - centre)  # half-size that stays inside the clip range
        half = room * (0.1 + 0.9 * torch.rand(count, 2, generator=generator))
        boxes = torch.cat((centre - half, centre + half), dim=1) * stride
        labels = torch.randint(0, num_classes, (count,), generator=generator)
        targets.append({"boxes": boxes, "labels": labels})
    return targets


@pytest.mark.parametrize("seed", range(20))
def test_encode_then_decode_gives_the_boxes_back(seed):
    generator = torch.Generator().manual_seed(seed)
    targets = random_targets(generator, num_images=3)
    encoded = centernet_targets(targets, num_classes=5, output_size=(16, 16))
    assert encoded["mask"].all()
    # Raw outputs that a perfect network would give: the target maps, the heatmap as logits.
    size, offset = torch.zeros(3, 2, 16, 16), torch.zeros(3, 2, 16, 16)
    image, x, y = encoded["batch_index"], encoded["peak"][:, 0], encoded["peak"][:, 1]
    size.permute(0, 2, 3, 1)[image, y, x] = encoded["size"]
    offset.permute(0, 2, 3, 1)[image, y, x] = encoded["offset"]
    detections = centernet_decode(torch.logit(encoded["heatmap"]), size, offset, score_threshold=0.5)
    for target, found in zip(targets, detections, strict=True):
        assert len(found["boxes"]) == len(target["boxes"])
        order_t = torch.argsort(target["boxes"][:, 0] + 1000 * target["boxes"][:, 1])
        order_f = torch.argsort(found["boxes"][:, 0] + 1000 * found["boxes"][:, 1])
        torch.testing.assert_close(found["boxes"][order_f], target["boxes"][order_t], rtol=0, atol=1e-4)
        assert found["labels"][order_f].tolist() == target["labels"][order_t].tolist()
        assert (found["scores"] == 1).all()


# --- the model's train / eval interface ----------------------------------------------------------------------


def test_train_returns_the_loss_dict_and_eval_the_detections():
    images, targets = synthetic_batch(2, 2)
    model = tiny_centernet()
    losses = model(images, targets)
    assert set(losses) == {"loss_heatmap", "loss_size", "loss_offset"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        detections = model(images)
        from_list = model(list(images))
    assert len(detections) == 2
    for found, listed in zip(detections, from_list, strict=True):
        assert found["boxes"].shape == (100, 4) and found["scores"].shape == (100,) and found["labels"].shape == (100,)
        assert found["labels"].dtype == torch.int64 and ((found["labels"] >= 0) & (found["labels"] < 11)).all()
        assert (found["scores"][:-1] >= found["scores"][1:]).all()
        torch.testing.assert_close(found["boxes"], listed["boxes"])


def test_score_threshold_and_max_detections():
    model = CenterNet(TinyBackbone(), 3, upsampling_channels=(8, 8, 8), head_width=8, max_detections=7)
    model.eval()
    with torch.no_grad():
        assert [len(d["boxes"]) for d in model(torch.randn(2, 3, 32, 32))] == [7, 7]
        model.score_threshold = 0.99
        assert [len(d["boxes"]) for d in model(torch.randn(2, 3, 32, 32))] == [0, 0]


def test_empty_targets_train():
    model = tiny_centernet()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    losses = model(torch.randn(2, 3, 64, 64), [empty, dict(empty)])
    assert losses["loss_size"].item() == 0 and losses["loss_offset"].item() == 0
    assert torch.isfinite(losses["loss_heatmap"]) and losses["loss_heatmap"] > 0
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


GOOD = {"boxes": torch.tensor([[1.0, 2.0, 10.0, 12.0]]), "labels": torch.tensor([1])}


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"boxes": torch.tensor([[10.0, 2.0, 1.0, 12.0]]), "labels": torch.tensor([1])}, r"image 1.*x2 >= x1"),
        ({"boxes": torch.tensor([[1.0, 2.0, 10.0]]), "labels": torch.tensor([1])}, r"image 1.*\[N, 4\]"),
        ({"boxes": torch.tensor([[1.0, 2.0, 10.0, 12.0]]), "labels": torch.tensor([11])}, r"image 1.*0\.\.10"),
        ({"boxes": torch.tensor([[1.0, 2.0, 10.0, 12.0]]), "labels": torch.tensor([1, 2])}, r"image 1.*shape \[1\]"),
        ({"boxes": torch.tensor([[1.0, 2.0, 10.0, 12.0]])}, r"image 1.*'labels'"),
    ],
)
def test_bad_targets_name_the_image(bad, message):
    with pytest.raises(ValueError, match=message):
        tiny_centernet()(torch.randn(2, 3, 32, 32), [GOOD, bad])


def test_missing_or_miscounted_targets_raise():
    model = tiny_centernet()
    with pytest.raises(ValueError, match="needs targets"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="list of 2"):
        model(torch.randn(2, 3, 32, 32), [GOOD])


# --- learning ------------------------------------------------------------------------------------------------


def train(model, images, targets, steps, lr):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    history = []
    for _ in range(steps):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


def test_tiny_centernet_overfits_two_scenes():
    images, targets = synthetic_batch(2, 2)
    history = train(tiny_centernet(), images, targets, steps=15, lr=1e-2)
    assert history[-1] < history[0] / 3, history  # about 5× in 10 steps when measured


@pytest.mark.slow
def test_centernet_resnet18_overfits_and_finds_the_objects():
    images, targets = synthetic_batch(2, 2)
    model = centernet_resnet18(num_classes=11)
    history = train(model, images, targets, steps=30, lr=1e-3)
    assert history[-1] < history[0] / 5, history
    model.eval()
    with torch.no_grad():
        detections = model(images)
    for target, found in zip(targets, detections, strict=True):
        top = found["boxes"][: len(target["boxes"])]
        iou = torchvision.ops.box_iou(top, target["boxes"])
        assert (iou.max(dim=0).values > 0.5).all()


def test_decode_clamps_negative_sizes_to_empty_boxes():
    """An untrained size head can regress negative sizes: decoding gives zero-size boxes at the peak, not x2 < x1."""
    heatmap = torch.full((1, 2, 4, 4), -10.0)
    heatmap[0, 1, 2, 1] = 5.0
    size = torch.full((1, 2, 4, 4), -3.0)
    offset = torch.zeros(1, 2, 4, 4)
    detection = centernet_decode(heatmap, size, offset, max_detections=1)[0]
    assert detection["labels"].tolist() == [1]
    assert detection["boxes"].tolist() == [[4.0, 8.0, 4.0, 8.0]]  # centre (1, 2) cells × stride 4, size 0
