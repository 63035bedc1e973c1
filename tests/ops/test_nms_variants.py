"""DIoU-NMS, weighted NMS and Matrix NMS against their papers' formulas written as plain loops, one box at a
time, on torchvision's IoU and DIoU; plus the cases that tell them from plain NMS, and bad input."""

import math

import pytest
import torch
import torchvision.ops as tv_ops

from zoo.ops import diou_nms, matrix_nms, nms, weighted_nms


def random_boxes(count, seed, size=100.0, extent=30.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(count, 2, generator=g, dtype=torch.float64) * size
    wh = torch.rand(count, 2, generator=g, dtype=torch.float64) * extent + 1
    scores = torch.rand(count, generator=g, dtype=torch.float64)
    return torch.cat([xy, xy + wh], dim=1), scores


def visiting_order(scores):
    return sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))


def diou_nms_loop(boxes, scores, threshold, beta):
    """Greedy: take the best remaining box M, drop every remaining B_i with IoU − R^β > threshold."""
    ious, dious = tv_ops.box_iou(boxes, boxes).tolist(), tv_ops.distance_box_iou(boxes, boxes).tolist()
    remaining, keep = visiting_order(scores), []
    while remaining:
        m = remaining.pop(0)
        keep.append(m)
        survivors = []
        for i in remaining:
            penalty = ious[m][i] - dious[m][i]  # ρ²/c²
            if not ious[m][i] - max(penalty, 0.0) ** beta > threshold:
                survivors.append(i)
        remaining = survivors
    return keep


def centre_distance_penalty(a, b):
    """ρ²/c² from the paper's definition, without any library: for the β ≠ 1 check of R itself."""
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = a.tolist(), b.tolist()
    rho2 = ((ax1 + ax2) / 2 - (bx1 + bx2) / 2) ** 2 + ((ay1 + ay2) / 2 - (by1 + by2) / 2) ** 2
    c2 = (max(ax2, bx2) - min(ax1, bx1)) ** 2 + (max(ay2, by2) - min(ay1, by1)) ** 2
    return rho2 / c2


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold, beta", [(0.5, 1.0), (0.3, 1.0), (0.45, 0.6)])
def test_diou_nms_equals_the_loop(seed, threshold, beta):
    boxes, scores = random_boxes(60, seed)
    assert diou_nms(boxes, scores, threshold, beta).tolist() == diou_nms_loop(boxes, scores, threshold, beta)


def test_distance_penalty_is_the_centre_distance_over_the_enclosing_diagonal():
    boxes, _ = random_boxes(10, 0)
    for i in range(10):
        for j in range(10):
            iou = float(tv_ops.box_iou(boxes[i : i + 1], boxes[j : j + 1]))
            diou = float(tv_ops.distance_box_iou(boxes[i : i + 1], boxes[j : j + 1]))
            assert iou - diou == pytest.approx(centre_distance_penalty(boxes[i], boxes[j]), abs=1e-9)


def test_diou_nms_keeps_a_neighbour_that_nms_drops():
    # Same size, IoU 75/125 = 0.6, centres 2.5 apart: R = 2.5² / (12.5² + 10²) = 0.0244, so IoU − R = 0.576,
    # under a threshold of 0.59 that plain NMS (0.6 > 0.59) suppresses at.
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [2.5, 0.0, 12.5, 10.0]])
    scores = torch.tensor([0.9, 0.8])
    assert nms(boxes, scores, 0.59).tolist() == [0]
    assert diou_nms(boxes, scores, 0.59).tolist() == [0, 1]
    assert diou_nms(boxes, scores, 0.57).tolist() == [0]
    # Concentric boxes have no distance penalty: DIoU-NMS is NMS there.
    concentric = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.5, 0.5, 9.5, 9.5]])
    assert diou_nms(concentric, scores, 0.5).tolist() == nms(concentric, scores, 0.5).tolist() == [0]


def weighted_nms_loop(boxes, scores, threshold):
    keep = tv_ops.nms(boxes, scores, threshold)
    ious = tv_ops.box_iou(boxes, boxes).tolist()
    merged = []
    for m in keep.tolist():
        total, acc = 0.0, [0.0] * 4
        for j in range(len(boxes)):
            if ious[m][j] > threshold:
                total += float(scores[j])
                acc = [a + float(scores[j]) * float(c) for a, c in zip(acc, boxes[j], strict=True)]
        merged.append([a / total for a in acc])
    return keep, torch.tensor(merged, dtype=boxes.dtype)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_weighted_nms_equals_the_loop(seed, threshold):
    boxes, scores = random_boxes(50, seed)
    keep, merged = weighted_nms(boxes, scores, threshold)
    expected_keep, expected_merged = weighted_nms_loop(boxes, scores, threshold)
    assert keep.tolist() == expected_keep.tolist()
    torch.testing.assert_close(merged, expected_merged, rtol=1e-12, atol=1e-9)


def test_weighted_nms_averages_agreeing_boxes():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.6, 0.4, 0.9])
    keep, merged = weighted_nms(boxes, scores, 0.5)
    assert keep.tolist() == [2, 0]
    torch.testing.assert_close(merged[0], boxes[2])  # alone: unchanged
    torch.testing.assert_close(merged[1], torch.tensor([0.4, 0.4, 10.4, 10.4]))  # 0.6·b0 + 0.4·b1


def matrix_nms_loop(boxes, scores, labels, kernel, sigma):
    """Eq. 4 of SOLOv2, one box at a time."""
    f = (lambda iou: math.exp(-sigma * iou**2)) if kernel == "gaussian" else (lambda iou: 1 - iou)
    order = visiting_order(scores)
    ious = tv_ops.box_iou(boxes, boxes).tolist()

    def iou(a, b):
        return 0.0 if labels is not None and labels[a] != labels[b] else ious[a][b]

    decayed = scores.clone()
    for position, j in enumerate(order):
        decay = 1.0
        for i_position, i in enumerate(order[:position]):
            iou_max = max((iou(k, i) for k in order[:i_position]), default=0.0)
            decay = min(decay, f(iou(i, j)) / f(iou_max))
        decayed[j] = scores[j] * decay
    return decayed


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kernel, sigma", [("gaussian", 2.0), ("gaussian", 0.5), ("linear", 2.0)])
@pytest.mark.parametrize("with_labels", [False, True])
def test_matrix_nms_equals_the_loop(seed, kernel, sigma, with_labels):
    boxes, scores = random_boxes(25, seed, size=40.0)
    labels = torch.randint(0, 3, (25,), generator=torch.Generator().manual_seed(seed)) if with_labels else None
    expected = matrix_nms_loop(boxes, scores, labels, kernel, sigma)
    torch.testing.assert_close(matrix_nms(boxes, scores, labels, kernel, sigma), expected, rtol=1e-10, atol=1e-12)


def test_matrix_nms_decays_a_duplicate_and_spares_a_distant_box():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    decayed = matrix_nms(boxes, scores, kernel="linear")
    torch.testing.assert_close(decayed, torch.tensor([0.9, 0.0, 0.7]))
    gaussian = matrix_nms(boxes, scores, kernel="gaussian", sigma=2.0)
    torch.testing.assert_close(gaussian, torch.tensor([0.9, 0.8 * math.exp(-2.0), 0.7]))


def test_empty_input_gives_empty_results():
    boxes, scores = torch.zeros(0, 4), torch.zeros(0)
    assert diou_nms(boxes, scores, 0.5).tolist() == []
    keep, merged = weighted_nms(boxes, scores, 0.5)
    assert keep.tolist() == [] and merged.shape == (0, 4)
    assert matrix_nms(boxes, scores).shape == (0,)


def test_bad_input_names_what_was_expected():
    boxes, scores = random_boxes(5, 0)
    with pytest.raises(ValueError, match="expected shape \\[5\\]"):
        diou_nms(boxes, scores[:3], 0.5)
    with pytest.raises(ValueError, match="beta: expected a value > 0"):
        diou_nms(boxes, scores, 0.5, beta=0.0)
    with pytest.raises(ValueError, match="expected values >= 0"):
        weighted_nms(boxes, scores - 1, 0.5)
    with pytest.raises(ValueError, match="kernel: expected one of"):
        matrix_nms(boxes, scores, kernel="box")
    with pytest.raises(ValueError, match="sigma: expected a value > 0"):
        matrix_nms(boxes, scores, sigma=0.0)
    with pytest.raises(ValueError, match="labels: expected shape \\[5\\]"):
        matrix_nms(boxes, scores, labels=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError):
        matrix_nms(boxes[:, :3], scores)
