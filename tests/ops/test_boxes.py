"""zoo.ops.boxes against torchvision.ops, plus properties of the IoU family that must hold on any boxes."""

import itertools

import pytest
import torch
import torchvision.ops as tv
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.ops.boxes import (
    BOX_FORMATS,
    box_area,
    box_convert,
    box_iou,
    check_boxes,
    clip_boxes_to_image,
    complete_box_iou,
    distance_box_iou,
    generalized_box_iou,
    paired_box_iou,
    remove_small_boxes,
)

PAIRWISE = {
    box_iou: tv.box_iou,
    generalized_box_iou: tv.generalized_box_iou,
    distance_box_iou: tv.distance_box_iou,
    complete_box_iou: tv.complete_box_iou,
}


def random_boxes(count: int, scale: float = 100.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """xyxy boxes with positive sizes (torchvision divides 0 by 0 for empty ones)."""
    corner = torch.rand(count, 2) * scale
    size = torch.rand(count, 2) * scale / 2 + 0.5
    boxes = torch.cat([corner, corner + size], dim=1)
    return boxes.round().to(dtype) if not dtype.is_floating_point else boxes.to(dtype)


@pytest.mark.parametrize(("in_fmt", "out_fmt"), list(itertools.product(BOX_FORMATS, repeat=2)))
def test_box_convert_matches_torchvision(in_fmt, out_fmt):
    boxes = tv.box_convert(random_boxes(50), "xyxy", in_fmt)
    torch.testing.assert_close(box_convert(boxes, in_fmt, out_fmt), tv.box_convert(boxes, in_fmt, out_fmt))


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_box_convert_round_trip_against_torchvision(fmt):
    boxes = random_boxes(20)
    ours = box_convert(tv.box_convert(boxes, "xyxy", fmt), fmt, "xyxy")
    torch.testing.assert_close(ours, boxes)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.int32])
def test_box_area_matches_torchvision(dtype):
    boxes = random_boxes(40, dtype=dtype)
    # Integer areas come back as float32 here (torchvision keeps the integer dtype); the values agree.
    torch.testing.assert_close(box_area(boxes), tv.box_area(boxes).to(box_area(boxes).dtype), atol=0, rtol=1e-6)


@pytest.mark.parametrize("ours", list(PAIRWISE), ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.int32])
def test_pairwise_matches_torchvision(ours, dtype):
    reference = PAIRWISE[ours]
    for count1, count2 in [(1, 1), (7, 3), (30, 40), (100, 5)]:
        for scale in (1.0, 100.0, 1000.0):
            if not dtype.is_floating_point and scale == 1.0:
                continue  # rounding tiny boxes to integers empties them
            boxes1, boxes2 = random_boxes(count1, scale, dtype), random_boxes(count2, scale, dtype)
            expected = reference(boxes1, boxes2)
            actual = ours(boxes1, boxes2)
            assert actual.shape == (count1, count2)
            assert actual.dtype == expected.dtype
            torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("ours", list(PAIRWISE), ids=lambda f: f.__name__)
def test_pairwise_on_overlapping_and_nested_boxes(ours):
    boxes = torch.tensor(
        [[0, 0, 10, 10], [0, 0, 10, 10], [2, 2, 8, 8], [5, 0, 15, 10], [10, 0, 20, 10], [30, 30, 31, 50]],
        dtype=torch.float32,
    )
    torch.testing.assert_close(ours(boxes, boxes), PAIRWISE[ours](boxes, boxes), atol=1e-6, rtol=0)


def test_half_precision_is_computed_in_float32():
    # Areas of ordinary image boxes overflow float16 (max 65504); torchvision upcasts, so must we.
    boxes = torch.tensor([[0, 0, 300, 300], [100, 100, 400, 400]], dtype=torch.float16)
    for ours, reference in PAIRWISE.items():
        torch.testing.assert_close(ours(boxes, boxes), reference(boxes, boxes), atol=1e-6, rtol=0)
    torch.testing.assert_close(box_area(boxes), tv.box_area(boxes))


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
def test_paired_is_the_diagonal_of_torchvisions_pairwise(kind):
    boxes1, boxes2 = random_boxes(25), random_boxes(25)
    reference = dict(zip(["iou", "giou", "diou", "ciou"], PAIRWISE.values(), strict=True))[kind]
    torch.testing.assert_close(
        paired_box_iou(boxes1, boxes2, kind, eps=0.0 if kind in ("iou", "giou") else 1e-7),
        reference(boxes1, boxes2).diagonal(),
        atol=1e-6,
        rtol=0,
    )


def test_paired_broadcasts_a_single_box():
    boxes, box = random_boxes(6), random_boxes(1)
    torch.testing.assert_close(paired_box_iou(boxes, box[0], eps=0.0), tv.box_iou(boxes, box)[:, 0])


@pytest.mark.parametrize("size", [(50, 80), (1, 1), (200, 30)])
def test_clip_boxes_to_image_matches_torchvision(size):
    boxes = torch.rand(3, 20, 4) * 300 - 100
    torch.testing.assert_close(clip_boxes_to_image(boxes, size), tv.clip_boxes_to_image(boxes, size))
    integer = boxes.round().long()
    assert torch.equal(clip_boxes_to_image(integer, size), tv.clip_boxes_to_image(integer, size))


@pytest.mark.parametrize("min_size", [0.0, 1.0, 10.0, 30.0])
def test_remove_small_boxes_matches_torchvision(min_size):
    boxes = random_boxes(100)
    assert torch.equal(remove_small_boxes(boxes, min_size), tv.remove_small_boxes(boxes, min_size))


def test_empty_inputs_give_empty_results():
    empty, some = torch.zeros(0, 4), random_boxes(3)
    for ours in PAIRWISE:
        assert ours(empty, some).shape == (0, 3)
        assert ours(some, empty).shape == (3, 0)
        assert ours(empty, empty).dtype == torch.float32
    assert box_area(empty).shape == (0,)
    assert box_convert(empty, "xyxy", "cxcywh").shape == (0, 4)
    assert clip_boxes_to_image(empty, (10, 10)).shape == (0, 4)
    kept = remove_small_boxes(empty, 1.0)
    assert kept.shape == (0,) and kept.dtype == torch.int64
    assert paired_box_iou(empty, empty, "ciou").shape == (0,)


@pytest.mark.parametrize("ours", [*PAIRWISE, paired_box_iou], ids=lambda f: f.__name__)
def test_bad_boxes_raise(ours):
    good = random_boxes(2)
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        ours(torch.zeros(2, 5), good)
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        ours(good, torch.zeros(2, 2, 4))
    with pytest.raises(TypeError, match="Tensor"):
        ours([[0, 0, 1, 1]], good)
    with pytest.raises(ValueError, match="x2 >= x1"):
        ours(torch.tensor([[5.0, 0, 1, 1]]), good[:1])
    with pytest.raises(ValueError, match="NaN"):
        ours(good, torch.tensor([[0, 0, float("nan"), 1]]))


def test_other_bad_inputs_raise():
    with pytest.raises(ValueError, match="in_fmt"):
        box_convert(random_boxes(2), "xyhw", "xyxy")
    with pytest.raises(ValueError, match="out_fmt"):
        box_convert(random_boxes(2), "xyxy", "XYXY")
    with pytest.raises(ValueError, match="kind"):
        paired_box_iou(random_boxes(2), random_boxes(2), "eiou")
    with pytest.raises(ValueError, match="matching rows"):
        paired_box_iou(random_boxes(2), random_boxes(3))
    with pytest.raises(ValueError, match="height, width"):
        clip_boxes_to_image(random_boxes(2), (10,))
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        box_area(torch.zeros(4))
    with pytest.raises(ValueError, match="box 1"):
        check_boxes(torch.tensor([[0.0, 0, 1, 1], [0, 3, 1, 2]]))


# Boxes on a coarse grid, so that zero widths, zero heights, coinciding and touching boxes are common.
coordinate = st.integers(min_value=0, max_value=8).map(float)
size = st.integers(min_value=0, max_value=4).map(float)
box_lists = st.lists(st.tuples(coordinate, coordinate, size, size), min_size=0, max_size=8)


def as_boxes(rows: list[tuple[float, float, float, float]]) -> torch.Tensor:
    return torch.tensor([[x, y, x + w, y + h] for x, y, w, h in rows], dtype=torch.float32).reshape(-1, 4)


@settings(max_examples=40, deadline=None)
@given(box_lists, box_lists)
def test_iou_family_properties(rows1, rows2):
    boxes1, boxes2 = as_boxes(rows1), as_boxes(rows2)
    iou = box_iou(boxes1, boxes2)
    assert torch.equal(iou, box_iou(boxes2, boxes1).T)
    assert ((iou >= 0) & (iou <= 1)).all()
    giou = generalized_box_iou(boxes1, boxes2)
    assert ((giou >= -1) & (giou <= 1)).all()
    assert (giou <= iou + 1e-6).all()
    diou = distance_box_iou(boxes1, boxes2)
    assert ((diou >= -1) & (diou <= iou + 1e-6)).all()
    ciou = complete_box_iou(boxes1, boxes2)
    assert torch.isfinite(ciou).all()
    assert (ciou <= diou + 1e-6).all()
    if len(rows1) == len(rows2):
        for kind in ("iou", "giou", "diou", "ciou"):
            assert torch.isfinite(paired_box_iou(boxes1, boxes2, kind)).all()


@settings(max_examples=30, deadline=None)
@given(box_lists)
def test_iou_of_a_box_with_itself(rows):
    boxes = as_boxes(rows)
    positive = box_area(boxes) > 0
    # A box with area covers itself exactly (IoU 1); an empty box overlaps nothing (0, not NaN).
    expected = positive.float()
    for ours in PAIRWISE:
        torch.testing.assert_close(ours(boxes, boxes).diagonal(), expected)
