"""zoo.ops.losses against torchvision.ops' losses, F.smooth_l1_loss and a direct evaluation of CenterNet's eq. 1."""

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.ops as tv

from zoo.ops.losses import (
    centernet_focal_loss,
    complete_box_iou_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
    sigmoid_focal_loss,
    smooth_l1_loss,
)

BOX_LOSSES = {
    generalized_box_iou_loss: tv.generalized_box_iou_loss,
    distance_box_iou_loss: tv.distance_box_iou_loss,
    complete_box_iou_loss: tv.complete_box_iou_loss,
}
REDUCTIONS = ["none", "mean", "sum"]


def random_boxes(count: int, scale: float = 10.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    corner = torch.rand(count, 2, dtype=torch.float64) * scale
    size = torch.rand(count, 2, dtype=torch.float64) * scale / 2 + 0.1
    return torch.cat([corner, corner + size], dim=1).to(dtype)


def edge_case_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Identical, nested, touching, disjoint and far-apart pairs, thin boxes."""
    boxes1 = torch.tensor(
        [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 1, 1], [0, 0, 100, 0.5]],
        dtype=torch.float32,
    )
    boxes2 = torch.tensor(
        [[0, 0, 10, 10], [2, 3, 4, 5], [10, 0, 20, 10], [20, 20, 30, 40], [500, 500, 900, 501], [0, 0, 0.5, 100]],
        dtype=torch.float32,
    )
    return boxes1, boxes2


@pytest.mark.parametrize("ours", list(BOX_LOSSES), ids=lambda f: f.__name__)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_box_losses_match_torchvision(ours, reduction):
    reference = BOX_LOSSES[ours]
    cases = [(random_boxes(n, scale), random_boxes(n, scale)) for n in (1, 5, 64) for scale in (1.0, 10.0, 500.0)]
    cases += [edge_case_pairs(), (random_boxes(10, dtype=torch.float64), random_boxes(10, dtype=torch.float64))]
    for boxes1, boxes2 in cases:
        expected = reference(boxes1, boxes2, reduction=reduction)
        actual = ours(boxes1, boxes2, reduction=reduction)
        assert actual.shape == expected.shape and actual.dtype == expected.dtype
        torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("ours", list(BOX_LOSSES), ids=lambda f: f.__name__)
def test_box_losses_on_integer_single_and_broadcast_boxes(ours):
    reference = BOX_LOSSES[ours]
    boxes1, boxes2 = random_boxes(8, 50).round().long(), random_boxes(8, 50).round().long()
    torch.testing.assert_close(ours(boxes1, boxes2), reference(boxes1, boxes2), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        ours(boxes1[0].float(), boxes2[0].float()), reference(boxes1[0].float(), boxes2[0].float())
    )
    single = random_boxes(1)[0]
    boxes = random_boxes(5)
    torch.testing.assert_close(ours(boxes, single, "sum"), reference(boxes, single, "sum"), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("ours", [generalized_box_iou_loss, distance_box_iou_loss], ids=lambda f: f.__name__)
@pytest.mark.parametrize("eps", [0.0, 1e-3, 1.0])
def test_box_losses_other_eps_match_torchvision(ours, eps):
    boxes1, boxes2 = random_boxes(30, 2.0), random_boxes(30, 2.0)
    torch.testing.assert_close(
        ours(boxes1, boxes2, eps=eps), BOX_LOSSES[ours](boxes1, boxes2, eps=eps), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("ours", list(BOX_LOSSES), ids=lambda f: f.__name__)
def test_box_loss_gradients_match_torchvision(ours):
    boxes1, boxes2 = random_boxes(20, dtype=torch.float64), random_boxes(20, dtype=torch.float64)
    gradients = []
    for loss in (ours, BOX_LOSSES[ours]):
        leaf1, leaf2 = boxes1.clone().requires_grad_(), boxes2.clone().requires_grad_()
        loss(leaf1, leaf2, reduction="sum").backward()
        gradients.append((leaf1.grad, leaf2.grad))
    torch.testing.assert_close(gradients[0], gradients[1], atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("ours", list(BOX_LOSSES), ids=lambda f: f.__name__)
def test_box_loss_gradcheck(ours):
    boxes1 = random_boxes(4, dtype=torch.float64).requires_grad_()
    boxes2 = random_boxes(4, dtype=torch.float64).requires_grad_()
    # CIoU holds α constant, so its analytic gradient is not the numerical one; check it on v = 0 (equal aspect).
    if ours is complete_box_iou_loss:
        boxes2 = (boxes1.detach() * 1.3 + 0.2).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: ours(a, b, reduction="sum"), (boxes1, boxes2))


@pytest.mark.parametrize("ours", list(BOX_LOSSES), ids=lambda f: f.__name__)
def test_box_losses_on_empty_input(ours):
    empty = torch.zeros(0, 4, requires_grad=True)
    assert ours(empty, empty).shape == (0,)
    for reduction in ("mean", "sum"):
        loss = ours(empty, empty, reduction=reduction)
        expected = BOX_LOSSES[ours](empty, empty, reduction=reduction)
        assert loss.shape == () and loss.item() == expected.item() == 0.0
        loss.backward()


def test_box_loss_bad_inputs_raise():
    boxes = random_boxes(3)
    with pytest.raises(ValueError, match="reduction"):
        generalized_box_iou_loss(boxes, boxes, reduction="avg")
    with pytest.raises(ValueError, match="matching rows"):
        distance_box_iou_loss(boxes, random_boxes(4))
    with pytest.raises(ValueError, match="x2 >= x1"):
        complete_box_iou_loss(boxes, boxes[:, [2, 3, 0, 1]])
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        generalized_box_iou_loss(boxes[:, :3], boxes[:, :3])
    with pytest.raises(TypeError, match="Tensor"):
        generalized_box_iou_loss(boxes.tolist(), boxes)


def test_complete_box_iou_loss_is_finite_for_empty_boxes():
    # torchvision's atan(w / h) gives NaN for w = h = 0.
    point, box = torch.tensor([[5.0, 5, 5, 5]]), torch.tensor([[0.0, 0, 10, 10]])
    assert torch.isfinite(complete_box_iou_loss(point, box)).all()
    assert torch.isfinite(complete_box_iou_loss(point, point)).all()


def focal_cases():
    logits = torch.randn(4, 7, 5) * 3
    hard = (torch.rand(4, 7, 5) > 0.7).float()
    soft = torch.rand(4, 7, 5)
    extreme = torch.tensor([-60.0, -20, -1e-3, 0, 1e-3, 20, 60])
    return [(logits, hard), (logits, soft), (extreme, torch.tensor([0.0, 1, 0, 1, 1, 0, 1]))]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2), (-1, 2), (0.0, 0), (1.0, 0.5), (0.5, 3)])
def test_sigmoid_focal_loss_matches_torchvision(reduction, alpha, gamma):
    for logits, targets in focal_cases():
        expected = tv.sigmoid_focal_loss(logits, targets, alpha, gamma, reduction)
        actual = sigmoid_focal_loss(logits, targets, alpha, gamma, reduction)
        assert actual.shape == expected.shape
        torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-6)


def test_sigmoid_focal_loss_gradients():
    logits, targets = torch.randn(3, 5, dtype=torch.float64), torch.rand(3, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda x: sigmoid_focal_loss(x, targets, reduction="sum"), (logits.requires_grad_(),)
    )
    gradients = []
    for loss in (sigmoid_focal_loss, tv.sigmoid_focal_loss):
        leaf = logits.detach().clone().requires_grad_()
        loss(leaf, targets, reduction="mean").backward()
        gradients.append(leaf.grad)
    torch.testing.assert_close(gradients[0], gradients[1])


def test_sigmoid_focal_loss_edge_cases():
    logits = torch.randn(6)
    torch.testing.assert_close(
        sigmoid_focal_loss(logits, torch.ones(6, dtype=torch.long)), tv.sigmoid_focal_loss(logits, torch.ones(6))
    )
    empty = torch.zeros(0, requires_grad=True)
    assert sigmoid_focal_loss(empty, empty.detach()).shape == (0,)
    # torchvision's mean of nothing is NaN; ours is 0, so a batch without targets does not poison training.
    assert sigmoid_focal_loss(empty, empty.detach(), reduction="mean").item() == 0.0
    with pytest.raises(ValueError, match="alpha"):
        sigmoid_focal_loss(logits, logits, alpha=1.5)
    with pytest.raises(ValueError, match="gamma"):
        sigmoid_focal_loss(logits, logits, gamma=-1)
    with pytest.raises(ValueError, match="one shape"):
        sigmoid_focal_loss(logits, logits[:3])
    with pytest.raises(ValueError, match="reduction"):
        sigmoid_focal_loss(logits, logits, reduction="batchmean")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0, 1e-3, 0.0])
def test_smooth_l1_loss_matches_pytorch(reduction, beta):
    prediction = torch.randn(40, 4, dtype=torch.float64) * 2
    target = torch.randn(40, 4, dtype=torch.float64)
    # Differences of exactly 0 and exactly beta (where the two pieces meet).
    target[0] = prediction[0]
    target[1] = prediction[1] - beta
    target[2] = prediction[2] + beta
    gradients = []
    for loss in (smooth_l1_loss, F.smooth_l1_loss):
        leaf = prediction.clone().requires_grad_()
        value = loss(leaf, target, beta=beta, reduction=reduction)
        value.sum().backward()
        gradients.append((value, leaf.grad))
    torch.testing.assert_close(gradients[0], gradients[1], atol=1e-12, rtol=1e-12)


def test_smooth_l1_loss_float32_and_inputs():
    prediction, target = torch.randn(100), torch.randn(100)
    torch.testing.assert_close(smooth_l1_loss(prediction, target), F.smooth_l1_loss(prediction, target))
    torch.testing.assert_close(
        smooth_l1_loss(prediction, target, beta=0.0, reduction="sum"), F.l1_loss(prediction, target, reduction="sum")
    )
    empty = torch.zeros(0)
    assert smooth_l1_loss(empty, empty).item() == 0.0  # PyTorch: NaN
    with pytest.raises(ValueError, match="beta"):
        smooth_l1_loss(prediction, target, beta=-1.0)
    with pytest.raises(ValueError, match="one shape"):
        smooth_l1_loss(prediction, target[:1])
    with pytest.raises(TypeError, match="floating"):
        smooth_l1_loss(prediction.long(), target.long())


def test_smooth_l1_gradcheck():
    prediction, target = torch.randn(10, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: smooth_l1_loss(x, target, beta=0.7), (prediction.requires_grad_(),))


def centernet_by_hand(logits, heatmap, alpha=2.0, beta=4.0, eps=1e-4):
    """Eq. 1 of "Objects as Points", pixel by pixel."""
    total, positives = 0.0, 0
    for index in range(logits.numel()):
        x, y = float(logits.flatten()[index]), float(heatmap.flatten()[index])
        p = min(max(1 / (1 + math.exp(-x)), eps), 1 - eps)
        if y == 1:
            total += (1 - p) ** alpha * math.log(p)
            positives += 1
        else:
            total += (1 - y) ** beta * p**alpha * math.log(1 - p)
    return -total / max(positives, 1)


def gaussian_heatmap(batch: int, channels: int, height: int, width: int, centres: int) -> torch.Tensor:
    """A CenterNet target: a Gaussian splatted at a few centres, peaks exactly 1."""
    heatmap = torch.zeros(batch, channels, height, width, dtype=torch.float64)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for _ in range(centres):
        b, c = torch.randint(batch, ()), torch.randint(channels, ())
        cy, cx = torch.randint(height, ()), torch.randint(width, ())
        blob = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * 1.5**2))
        heatmap[b, c] = torch.maximum(heatmap[b, c], blob)
    return heatmap


@pytest.mark.parametrize(("alpha", "beta"), [(2.0, 4.0), (1.0, 2.0), (0.0, 0.0)])
def test_centernet_focal_loss_matches_the_formula(alpha, beta):
    for centres in (0, 1, 3):
        heatmap = gaussian_heatmap(2, 2, 4, 5, centres)
        logits = torch.randn(2, 2, 4, 5, dtype=torch.float64) * 4
        logits[0, 0, 0, :2] = torch.tensor([-30.0, 30.0])  # beyond the clamp on both sides
        expected = centernet_by_hand(logits, heatmap, alpha, beta)
        actual = centernet_focal_loss(logits, heatmap, alpha, beta)
        assert actual.shape == ()
        assert abs(actual.item() - expected) < 1e-9 * max(1.0, abs(expected))
        actual32 = centernet_focal_loss(logits.float(), heatmap.float(), alpha, beta)
        assert abs(actual32.item() - expected) < 1e-5 * max(1.0, abs(expected))


def test_centernet_focal_loss_gradcheck_and_inputs():
    heatmap = gaussian_heatmap(1, 2, 3, 3, 2)
    logits = (torch.randn(1, 2, 3, 3, dtype=torch.float64) * 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: centernet_focal_loss(x, heatmap), (logits,))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        centernet_focal_loss(logits, heatmap * 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        centernet_focal_loss(logits, torch.full_like(heatmap, float("nan")))
    with pytest.raises(ValueError, match="one shape"):
        centernet_focal_loss(logits, heatmap[0])
    with pytest.raises(ValueError, match="eps"):
        centernet_focal_loss(logits, heatmap, eps=0.0)
    with pytest.raises(ValueError, match="alpha"):
        centernet_focal_loss(logits, heatmap, alpha=-1.0)
    empty = torch.zeros(0, 1, 4, 4)
    assert centernet_focal_loss(empty, empty).item() == 0.0


def test_dice_loss_against_the_formula_and_torchmetrics():
    """Soft Dice against a direct per-class evaluation of 1 - mean_c (2 Σ p y + 1) / (Σ p + Σ y + 1) over the
    non-ignored pixels; a confident perfect prediction gives 0; gradcheck."""
    from zoo.ops.losses import dice_loss

    logits = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    targets = torch.randint(0, 3, (2, 5, 4))
    targets[0, 0, :2] = 255
    valid = targets != 255
    expected = []
    probs = logits.softmax(1)
    for c in range(3):
        p = probs[:, c][valid]
        y = (targets[valid] == c).double()
        expected.append((2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1))
    assert torch.allclose(dice_loss(logits, targets, ignore_index=255), 1 - torch.stack(expected).mean())
    perfect = torch.nn.functional.one_hot(targets.clamp(max=2), 3).movedim(-1, 1).double() * 1e3
    assert dice_loss(perfect, targets, ignore_index=255) < 1e-6
    assert torch.autograd.gradcheck(lambda x: dice_loss(x, targets, ignore_index=255), logits.requires_grad_())
    with pytest.raises(ValueError, match="class indices in 0..2"):
        dice_loss(logits, torch.full((2, 5, 4), 3))
    with pytest.raises(ValueError, match="targets: expected shape"):
        dice_loss(logits, targets[:, :4])
