"""zoo.ops.nms against torchvision.ops.nms / batched_nms, and Soft-NMS against a direct Algorithm 1."""

import math
from unittest import mock

import pytest
import torch
import torchvision.ops as tv
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.ops.nms import batched_nms, nms, nms_matrix, soft_nms

# nms takes the whole suppression matrix for a few boxes and sorted windows in blocks for more; on small inputs,
# the second path is forced with tiny blocks and chunks, so that block and chunk boundaries are crossed too.
SMALL_WINDOWS = {"_DENSE_UP_TO": 0, "_BLOCK": 8, "_CHUNK": 50}


@pytest.fixture(params=["default", "windows"])
def path(request):
    if request.param == "default":
        yield request.param
    else:
        with mock.patch.multiple("zoo.ops.nms", **SMALL_WINDOWS):
            yield request.param


def random_boxes(count: int, scale: float = 100.0, integer: bool = False) -> torch.Tensor:
    """Boxes of mixed sizes around a few centres, so that many overlap; integers make exact ties and duplicates."""
    centres = torch.rand(max(1, count // 8), 2) * scale
    xy = centres[torch.randint(len(centres), (count,))] + torch.randn(count, 2) * scale / 20
    size = torch.rand(count, 2) * scale / 4 + 1
    boxes = torch.cat([xy, xy + size], dim=1)
    return boxes.round() if integer else boxes


def random_scores(count: int, ties: bool) -> torch.Tensor:
    return torch.randint(0, 4, (count,)).float() if ties else torch.rand(count)


def cases():
    """(boxes, scores) sets: continuous and integer boxes, distinct and heavily tied scores, duplicated boxes."""
    for count in (1, 2, 5, 30, 120):
        for integer in (False, True):
            for ties in (False, True):
                yield random_boxes(count, integer=integer), random_scores(count, ties)
    boxes = random_boxes(20, integer=True)
    yield torch.cat([boxes, boxes, boxes[:5]]), random_scores(45, ties=True)  # duplicates
    yield torch.zeros(4, 4), torch.tensor([0.5, 0.7, 0.7, 0.1])  # empty (zero-area) boxes: 0/0 suppresses nothing
    yield random_boxes(60).double(), random_scores(60, ties=False).double()


THRESHOLDS = [0.0, 0.3, 0.5, 0.7, 1 / 3, 1.0]


def test_nms_matches_torchvision(path):
    for boxes, scores in cases():
        for threshold in THRESHOLDS:
            expected = tv.nms(boxes, scores, threshold)
            actual = nms(boxes, scores, threshold)
            assert actual.dtype == torch.int64
            assert torch.equal(actual, expected), (threshold, boxes, scores)


def test_nms_matrix_matches_torchvision():
    for boxes, scores in cases():
        for threshold in THRESHOLDS:
            assert torch.equal(nms_matrix(boxes, scores, threshold), tv.nms(boxes, scores, threshold))


def test_nms_matches_torchvision_across_blocks():
    # More boxes than one block, with the default settings.
    for integer, ties in ((False, False), (True, True)):
        boxes, scores = random_boxes(2200, scale=1000.0, integer=integer), random_scores(2200, ties)
        assert torch.equal(nms(boxes, scores, 0.5), tv.nms(boxes, scores, 0.5))


def test_nms_at_the_threshold_exactly(path):
    # IoU 1/2 and 1/3 exactly: 0.5 is not above 0.5, but float32(1/3) is above the double 1/3 (torchvision's view).
    boxes = torch.tensor([[0.0, 0, 2, 1], [0, 0, 1, 1], [10, 0, 13, 1], [10, 0, 11, 1]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    for threshold in (0.5, 1 / 3, 0.3333333, 0.33333334):
        assert torch.equal(nms(boxes, scores, threshold), tv.nms(boxes, scores, threshold))
        assert torch.equal(nms_matrix(boxes, scores, threshold), tv.nms(boxes, scores, threshold))


@pytest.mark.parametrize("threshold", [-0.1, 0.5, 1.5, math.inf])
def test_nms_out_of_range_thresholds_match_torchvision(threshold, path):
    boxes, scores = random_boxes(40, integer=True), random_scores(40, ties=True)
    boxes[:3] = 0  # empty boxes: their IoU with each other is 0/0, which suppresses nothing
    boxes[3, 2:] = math.inf
    boxes[4] = torch.tensor([-math.inf, 0, math.inf, 5])
    assert torch.equal(nms(boxes, scores, threshold), tv.nms(boxes, scores, threshold))
    # torchvision's batched_nms offsets the classes apart, which a negative threshold defeats; so compare with its
    # definition: torchvision's nms class by class, merged by decreasing score (ties by index).
    idxs = torch.randint(0, 3, (40,))
    per_class = [(idxs == c).nonzero().squeeze(1) for c in range(3)]
    kept = (
        torch.cat([members[tv.nms(boxes[members], scores[members], threshold)] for members in per_class]).sort().values
    )
    expected = kept[scores[kept].sort(descending=True, stable=True).indices]
    assert torch.equal(batched_nms(boxes, scores, idxs, threshold), expected)


def test_batched_nms_matches_torchvision(path):
    for boxes, scores in cases():
        for classes in (1, 4):
            idxs = torch.randint(0, classes, (len(boxes),))
            for threshold in (0.0, 0.5):
                expected = tv.batched_nms(boxes, scores, idxs, threshold)
                assert torch.equal(batched_nms(boxes, scores, idxs, threshold), expected)


@pytest.mark.parametrize("count", [900, 3000])
def test_batched_nms_matches_torchvision_on_both_of_its_paths(count):
    # torchvision offsets the boxes per class up to 1000 boxes and loops over classes above (on CPU).
    boxes = random_boxes(count, scale=500.0, integer=True)
    for ties in (False, True):
        scores = random_scores(count, ties)
        idxs = torch.randint(-2, 18, (count,))
        assert torch.equal(batched_nms(boxes, scores, idxs, 0.5), tv.batched_nms(boxes, scores, idxs, 0.5))


def test_empty_inputs(path):
    empty = torch.zeros(0, 4)
    for result in (
        nms(empty, torch.zeros(0), 0.5),
        nms_matrix(empty, torch.zeros(0), 0.5),
        batched_nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5),
        soft_nms(empty, torch.zeros(0))[0],
    ):
        assert result.shape == (0,) and result.dtype == torch.int64
    assert soft_nms(empty, torch.zeros(0))[1].shape == (0,)


@pytest.mark.parametrize("function", [nms, nms_matrix, soft_nms], ids=lambda f: f.__name__)
def test_bad_inputs_raise(function):
    boxes, scores = random_boxes(5), torch.rand(5)
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        function(boxes[:, :3], scores, 0.5)
    with pytest.raises(ValueError, match="one per box"):
        function(boxes, scores[:4], 0.5)
    with pytest.raises(ValueError, match="NaN"):
        function(boxes, torch.tensor([0.1, float("nan"), 0.3, 0.4, 0.5]), 0.5)
    with pytest.raises(ValueError, match="x2 >= x1"):
        function(boxes[:, [2, 3, 0, 1]], scores, 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        function(boxes, scores, float("nan"))
    with pytest.raises(TypeError, match="Tensor"):
        function(boxes, scores.tolist(), 0.5)


def test_batched_nms_bad_idxs_raise():
    boxes, scores = random_boxes(5), torch.rand(5)
    with pytest.raises(ValueError, match="idxs"):
        batched_nms(boxes, scores, torch.zeros(4, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        batched_nms(boxes, scores, torch.tensor([0.0, 1, float("nan"), 0, 1]), 0.5)


# Small integer boxes: duplicates, nesting and IoUs at common thresholds are frequent.
box_rows = st.lists(
    st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 6), st.integers(0, 6)), min_size=0, max_size=25
)


def as_boxes(rows):
    return torch.tensor([[x, y, x + w, y + h] for x, y, w, h in rows], dtype=torch.float32).reshape(-1, 4)


@settings(max_examples=40, deadline=None)
@given(box_rows, st.sampled_from([0.0, 0.2, 0.5, 0.8]), st.randoms(use_true_random=False))
def test_nms_properties(rows, threshold, rng):
    boxes = as_boxes(rows)
    scores = torch.tensor(rng.sample(range(1000), len(rows)), dtype=torch.float32)  # distinct
    keep = nms(boxes, scores, threshold)
    assert torch.equal(keep, tv.nms(boxes, scores, threshold))
    with mock.patch.multiple("zoo.ops.nms", **SMALL_WINDOWS):
        assert torch.equal(nms(boxes, scores, threshold), keep)
    # No two kept boxes overlap beyond the threshold (torchvision's IoU; NaN for two empty boxes).
    iou = tv.box_iou(boxes[keep], boxes[keep]).fill_diagonal_(0).nan_to_num(0.0)
    assert (iou <= threshold).all()
    assert (scores[keep][:-1] > scores[keep][1:]).all()
    # Shuffling the input only renames the boxes.
    permutation = torch.randperm(len(rows))
    shuffled = nms(boxes[permutation], scores[permutation], threshold)
    assert torch.equal(permutation[shuffled], keep)


def soft_nms_by_hand(boxes, scores, iou_threshold, sigma, score_threshold, method):
    """Algorithm 1 of Bodla et al. (2017), box by box, plus dropping scores below the threshold."""

    def iou(a, b):
        width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = width * height
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    boxes, scores = boxes.tolist(), scores.tolist()
    remaining = [i for i in range(len(boxes)) if scores[i] >= score_threshold]
    keep, kept_scores = [], []
    while remaining:
        best = max(remaining, key=lambda i: (scores[i], -i))  # highest score, then lowest index
        keep.append(best)
        kept_scores.append(scores[best])
        remaining.remove(best)
        for i in remaining:
            overlap = iou(boxes[best], boxes[i])
            if method == "linear":
                if overlap > iou_threshold:
                    scores[i] *= 1 - overlap
            else:
                scores[i] *= math.exp(-(overlap**2) / sigma)
        remaining = [i for i in remaining if scores[i] >= score_threshold]
    return keep, kept_scores


@pytest.mark.parametrize("method", ["linear", "gaussian"])
@pytest.mark.parametrize(
    ("iou_threshold", "sigma", "score_threshold"), [(0.3, 0.5, 0.001), (0.5, 0.1, 0.05), (0.0, 2.0, 0.3)]
)
def test_soft_nms_matches_algorithm_1(method, iou_threshold, sigma, score_threshold):
    for count in (1, 4, 25, 80):
        boxes = random_boxes(count).double()
        scores = torch.rand(count, dtype=torch.float64)
        keep, decayed = soft_nms(boxes, scores, iou_threshold, sigma, score_threshold, method)
        expected_keep, expected_scores = soft_nms_by_hand(boxes, scores, iou_threshold, sigma, score_threshold, method)
        assert keep.tolist() == expected_keep
        torch.testing.assert_close(decayed, torch.tensor(expected_scores, dtype=torch.float64), rtol=1e-12, atol=0)


def test_soft_nms_ties_zero_area_boxes_and_float32():
    boxes = torch.cat([random_boxes(10, integer=True), torch.zeros(2, 4)])
    scores = torch.tensor([0.5, 0.5, 0.9, 0.9, 0.2, 0.5, 0.9, 0.1, 0.3, 0.3, 0.8, 0.8])
    scores_before = scores.clone()
    for method in ("linear", "gaussian"):
        keep, decayed = soft_nms(boxes, scores, method=method)
        expected_keep, expected_scores = soft_nms_by_hand(boxes, scores, 0.3, 0.5, 0.001, method)
        assert keep.tolist() == expected_keep
        torch.testing.assert_close(decayed, torch.tensor(expected_scores), rtol=1e-5, atol=1e-7)
    assert torch.equal(scores, scores_before)  # the input is not decayed in place


def test_soft_nms_linear_with_threshold_one_is_a_sort():
    # Nothing overlaps above IoU 1, so no score decays: the kept boxes are the scores above the cut, sorted.
    boxes, scores = random_boxes(30), torch.rand(30)
    keep, decayed = soft_nms(boxes, scores, iou_threshold=1.0, score_threshold=0.2)
    expected = scores.argsort(descending=True)
    expected = expected[scores[expected] >= 0.2]
    assert torch.equal(keep, expected)
    assert torch.equal(decayed, scores[expected])


def test_soft_nms_bad_inputs_raise():
    boxes, scores = random_boxes(3), torch.rand(3)
    with pytest.raises(ValueError, match="method"):
        soft_nms(boxes, scores, method="hard")
    with pytest.raises(ValueError, match="sigma"):
        soft_nms(boxes, scores, sigma=0.0, method="gaussian")
    with pytest.raises(ValueError, match="score_threshold"):
        soft_nms(boxes, scores, score_threshold=float("nan"))
