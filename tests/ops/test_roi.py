"""zoo.ops.roi against torchvision.ops (roi_align, roi_pool, MultiScaleRoIAlign, poolers.LevelMapper)."""

from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign as ReferenceMultiScaleRoIAlign
from torchvision.ops import roi_align as reference_roi_align
from torchvision.ops import roi_pool as reference_roi_pool
from torchvision.ops.poolers import LevelMapper

from zoo.ops import roi as roi_module
from zoo.ops.roi import MultiScaleRoIAlign, map_levels, roi_align, roi_pool

SCALES = (1.0, 0.5, 0.25, 1 / 16, 0.3)


def random_rois(num: int, images: int, height: int, width: int, scale: float, dtype=torch.float32) -> torch.Tensor:
    """[K, 5] RoIs in image coordinates: inside, partly or fully outside the map, tiny, inverted and huge ones."""
    extent = torch.tensor([width, height], dtype=dtype) / scale
    corner = (torch.rand(num, 2, dtype=dtype) * 1.6 - 0.3) * extent
    size = torch.rand(num, 2, dtype=dtype) ** 3 * extent * 1.5  # mostly small, some larger than the map
    size[: num // 8] *= 8  # huge
    size[num // 8 : num // 4] = torch.rand(num // 4 - num // 8, 2, dtype=dtype) / scale  # below one cell
    size[num // 4 : num // 4 + 2] *= -0.1  # inverted (x2 < x1)
    batch = torch.randint(0, images, (num, 1)).to(dtype)
    return torch.cat([batch, corner, corner + size], dim=1)


def random_case(scale: float, dtype=torch.float32, num_rois: int = 40):
    height, width = torch.randint(1, 18, (2,)).tolist()
    features = torch.randn(2, 3, height, width, dtype=dtype)
    return features, random_rois(num_rois, 2, height, width, scale, dtype)


# --------------------------------------------------------------------------------------------- roi_align


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2, 3])
def test_roi_align_matches_torchvision(aligned, sampling_ratio):
    for scale in SCALES:
        features, rois = random_case(scale)
        for output_size in (1, (2, 3), 7):
            ours = roi_align(features, rois, output_size, scale, sampling_ratio, aligned)
            expected = reference_roi_align(features, rois, output_size, scale, sampling_ratio, aligned)
            torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


# Each row: (x1, y1, x2, y2) on a 6 x 7 map (H = 6, W = 7).
EDGE_BOXES = [
    (-30.0, -30.0, -20.0, -25.0),  # fully outside, top-left
    (10.0, 1.0, 14.0, 3.0),  # fully outside, right
    (1.0, 8.0, 3.0, 12.0),  # fully outside, bottom
    (-2.0, -1.5, 3.0, 2.0),  # partly outside
    (5.0, 4.0, 9.0, 8.0),  # partly outside, past the last cell centre
    (-1.0, -1.0, 7.0, 6.0),  # the whole map, edges exactly at -1 and (W, H)
    (0.0, 0.0, 6.0, 5.0),  # cell centres, integer coordinates
    (2.0, 2.0, 2.0, 2.0),  # zero size
    (3.3, 2.2, 3.35, 2.25),  # far below one cell
    (4.0, 3.0, 2.0, 1.0),  # inverted
    (-60.0, -40.0, 90.0, 100.0),  # huge: 20 times the map
    (6.5, 5.5, 7.5, 6.5),  # straddling the far corner
]


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_roi_align_edge_rois_match_torchvision(aligned, sampling_ratio, scale):
    features = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    boxes = torch.tensor(EDGE_BOXES, dtype=torch.float64) / scale
    rois = torch.cat([torch.arange(len(boxes)).remainder(2)[:, None].double(), boxes], dim=1)
    ours = roi_align(features, rois, (3, 4), scale, sampling_ratio, aligned)
    expected = reference_roi_align(features, rois, (3, 4), scale, sampling_ratio, aligned)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)


def test_roi_align_one_cell_map_and_closed_form():
    # A 1 x 1 map: every sample inside [-1, 1] reads the single cell, every sample outside reads 0.
    features = torch.tensor([[[[2.5]]]])
    rois = torch.tensor([[0, -0.5, -0.5, 0.5, 0.5], [0, 3.0, 3.0, 4.0, 4.0]])
    ours = roi_align(features, rois, 2, sampling_ratio=2)
    assert torch.equal(ours[0], torch.full((1, 2, 2), 2.5))
    assert torch.equal(ours[1], torch.zeros(1, 2, 2))
    torch.testing.assert_close(ours, reference_roi_align(features, rois, 2, sampling_ratio=2))


def test_roi_align_bilinear_closed_form():
    # f(y, x) = 3 y + 5 x is reproduced exactly by bilinear interpolation inside the map: a 1-sample bin at the
    # centre (cy, cx) of a RoI reads 3 cy + 5 cx.
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(9.0), indexing="ij")
    features = (3 * ys + 5 * xs)[None, None].double()
    rois = torch.tensor([[0, 1.0, 2.0, 4.0, 3.0], [0, 0.25, 0.5, 6.75, 6.5]], dtype=torch.float64)
    ours = roi_align(features, rois, 1, sampling_ratio=1)
    centres = (rois[:, 1:3] + rois[:, 3:]) / 2
    torch.testing.assert_close(ours.flatten(), 3 * centres[:, 1] + 5 * centres[:, 0])


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_gradient_matches_torchvision(aligned, sampling_ratio):
    for dtype, tolerance in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        features, rois = random_case(0.5, dtype)
        features.requires_grad_(True)
        weight = torch.randn(len(rois), 3, 2, 3, dtype=dtype)
        ours = torch.autograd.grad(
            (roi_align(features, rois, (2, 3), 0.5, sampling_ratio, aligned) * weight).sum(), features
        )
        expected = torch.autograd.grad(
            (reference_roi_align(features, rois, (2, 3), 0.5, sampling_ratio, aligned) * weight).sum(), features
        )
        torch.testing.assert_close(ours[0], expected[0], rtol=0, atol=tolerance)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_gradcheck(aligned, sampling_ratio):
    features = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [[0, 0.3, 0.7, 4.1, 3.9], [1, -1.2, 1.0, 2.5, 6.5], [1, 2.0, 2.0, 2.4, 2.2]], dtype=torch.float64
    )
    assert torch.autograd.gradcheck(
        lambda f: roi_align(f, rois, 2, 0.9, sampling_ratio, aligned), (features,), fast_mode=True
    )


def test_roi_align_boxes_get_no_gradient_and_input_layout_does_not_matter():
    features, rois = random_case(1.0)
    expected = reference_roi_align(features, rois, 3, 1.0, 2)
    rois.requires_grad_(True)
    channels_last = features.to(memory_format=torch.channels_last)
    strided = torch.randn(2, 3, features.shape[2], features.shape[3] * 2)[..., ::2]
    strided.copy_(features)
    for layout in (channels_last, strided):
        ours = roi_align(layout, rois, 3, 1.0, 2)
        assert ours.is_contiguous() and not ours.requires_grad
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------------- roi_pool


@pytest.mark.parametrize("scale", SCALES)
def test_roi_pool_matches_torchvision(scale):
    for quantised in (False, True):  # quantised values make ties: the first maximum must win
        features, rois = random_case(scale)
        if quantised:
            features = features.mul(2).round()
        features.requires_grad_(True)
        for output_size in (1, (2, 3), 7):
            ours = roi_pool(features, rois, output_size, scale)
            expected = reference_roi_pool(features, rois, output_size, scale)
            torch.testing.assert_close(ours, expected, rtol=0, atol=0)
            weight = torch.randn_like(ours)
            ours_grad = torch.autograd.grad((ours * weight).sum(), features)[0]
            expected_grad = torch.autograd.grad((expected * weight).sum(), features)[0]
            torch.testing.assert_close(ours_grad, expected_grad, rtol=0, atol=1e-5)


def test_roi_pool_rounds_halves_away_from_zero():
    features = torch.randn(1, 2, 8, 8)
    # round(0.5) = 1 and round(2.5) = 3 (C's round; torch.round would give 0 and 2): rows and columns 1..3.
    rois = torch.tensor([[0, 0.5, 0.5, 2.5, 2.5], [0, -0.5, -1.5, 1.5, 0.5], [0, 3.5, 4.5, 5.5, 6.5]])
    ours = roi_pool(features, rois, 1)
    torch.testing.assert_close(ours[0, :, 0, 0], features[0, :, 1:4, 1:4].amax(dim=(1, 2)))
    torch.testing.assert_close(ours, reference_roi_pool(features, rois, 1), rtol=0, atol=0)
    edge = torch.tensor([[0] + list(box) for box in EDGE_BOXES])
    torch.testing.assert_close(roi_pool(features, edge, (3, 2)), reference_roi_pool(features, edge, (3, 2)))


def test_roi_pool_ignores_nan_and_keeps_torchvisions_floor_for_minus_inf():
    features = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    features[0, 0, 1:3, 1:3] = float("nan")
    features[0, 1, :3, :3] = float("-inf")
    features[0, 1, 0, 0] = float("nan")
    rois = torch.tensor([[0, 0, 0, 5, 5], [0, 1, 1, 2, 2], [0, 0, 0, 1, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(roi_pool(features, rois, 3), reference_roi_pool(features, rois, 3), rtol=0, atol=0)


def test_roi_pool_gradcheck():
    features = torch.randn(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.0, 0.0, 5.0, 4.0], [0, 2.0, 1.0, 9.0, 3.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: roi_pool(f, rois, (2, 3)), (features,), fast_mode=True)


# --------------------------------------------------------------------------------------------- both ops


@pytest.mark.parametrize("op, reference", [(roi_align, reference_roi_align), (roi_pool, reference_roi_pool)])
def test_list_of_boxes_per_image(op, reference):
    features = torch.randn(3, 2, 10, 9)
    boxes = [torch.rand(4, 4) * 5 + torch.tensor([0, 0, 4, 4.0]), torch.zeros(0, 4), torch.rand(3, 4) * 9]
    torch.testing.assert_close(op(features, boxes, 2), reference(features, boxes, 2))


def test_chunked_and_grouped_rois_match_torchvision(monkeypatch):
    # A tiny budget forces many chunks and size groups (processed out of RoI order) in both ops.
    monkeypatch.setattr(roi_module, "_BUDGET", 200)
    features, rois = random_case(0.5, torch.float64, num_rois=30)
    features.requires_grad_(True)
    for op, reference, kwargs in (
        (roi_align, reference_roi_align, {"sampling_ratio": -1}),
        (roi_align, reference_roi_align, {"sampling_ratio": 2, "aligned": True}),
        (roi_pool, reference_roi_pool, {}),
    ):
        ours, expected = op(features, rois, (3, 2), 0.5, **kwargs), reference(features, rois, (3, 2), 0.5, **kwargs)
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)
        ours_grad = torch.autograd.grad(ours.sum(), features)[0]
        torch.testing.assert_close(ours_grad, torch.autograd.grad(expected.sum(), features)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("op", [roi_align, roi_pool])
@pytest.mark.parametrize("boxes", [torch.zeros(0, 5), [torch.zeros(0, 4), torch.zeros(0, 4)], []])
def test_no_rois_give_an_empty_output(op, boxes):
    features = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    out = op(features, boxes, (2, 4))
    assert out.shape == (0, 3, 2, 4) and out.dtype == torch.float64
    assert reference_roi_align(features, torch.zeros(0, 5, dtype=torch.float64), (2, 4)).shape == out.shape


FEATURES = torch.zeros(2, 3, 5, 5)
ROIS = torch.tensor([[0, 1.0, 1.0, 3.0, 3.0]])
BAD_ARGUMENTS = [
    ((torch.zeros(3, 5, 5), ROIS, 2), {}, ValueError, "4-D"),
    ((torch.zeros(1, 3, 5, 5, dtype=torch.long), ROIS, 2), {}, TypeError, "floating-point"),
    (([[0.0]], ROIS, 2), {}, TypeError, "torch.Tensor"),
    ((FEATURES, torch.zeros(1, 4), 2), {}, ValueError, r"Tensor\[K, 5\]"),
    ((FEATURES, [torch.zeros(1, 5)], 2), {}, ValueError, r"boxes\[0\]"),
    ((FEATURES, [ROIS[:, 1:], [1, 2, 3, 4]], 2), {}, TypeError, r"boxes\[1\]"),
    ((FEATURES, 3.0, 2), {}, TypeError, "boxes"),
    ((FEATURES, ROIS, 0), {}, ValueError, "positive"),
    ((FEATURES, ROIS, (2, -1)), {}, ValueError, "positive"),
    ((FEATURES, ROIS, (2,)), {}, TypeError, "output_size"),
    ((FEATURES, ROIS, 2.5), {}, TypeError, "output_size"),
    ((FEATURES, ROIS, 2), {"spatial_scale": 0.0}, ValueError, "spatial_scale"),
    ((FEATURES, ROIS, 2), {"spatial_scale": float("nan")}, ValueError, "spatial_scale"),
    ((FEATURES, ROIS, 2), {"spatial_scale": "1"}, TypeError, "spatial_scale"),
    ((FEATURES, torch.tensor([[2, 1.0, 1.0, 3.0, 3.0]]), 2), {}, ValueError, "batch index"),
    ((FEATURES, torch.tensor([[-1, 1.0, 1.0, 3.0, 3.0]]), 2), {}, ValueError, "batch index"),
    ((FEATURES, [ROIS[:, 1:]] * 3, 2), {}, ValueError, "batch index"),
    ((FEATURES, torch.tensor([[0, 1.0, float("nan"), 3.0, 3.0]]), 2), {}, ValueError, "finite"),
]


@pytest.mark.parametrize("op", [roi_align, roi_pool])
@pytest.mark.parametrize("args, kwargs, error, message", BAD_ARGUMENTS)
def test_bad_arguments_raise(op, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        op(*args, **kwargs)


@pytest.mark.parametrize("sampling_ratio", [2.0, None, True])
def test_roi_align_sampling_ratio_must_be_an_int(sampling_ratio):
    with pytest.raises(TypeError, match="sampling_ratio"):
        roi_align(FEATURES, ROIS, 2, sampling_ratio=sampling_ratio)


# --------------------------------------------------------------------------------------------- multi-scale


def level_boxes(per_level: int) -> torch.Tensor:
    """xyxy boxes whose FPN level (k0 = 4, 224 px) is 1 .. 6: below, on and above the pyramid's 2 .. 5."""
    sides = torch.cat([224 * 2.0 ** (k - 4) * (1 + torch.rand(per_level) * 0.9) for k in range(1, 7)])
    aspect = torch.exp(torch.randn(len(sides)) * 0.3)
    size = torch.stack([sides * aspect, sides / aspect], dim=1)
    corner = torch.rand(len(sides), 2) * 700 - 50
    return torch.cat([corner, corner + size], dim=1)


def pyramid(channels: int = 4, dtype=torch.float32) -> OrderedDict:
    """FPN-like maps for a padded 800 x 608 batch of 2: strides 4, 8, 16, 32, and an unused extra level."""
    maps = OrderedDict(
        (name, torch.randn(2, channels, 800 // s, 608 // s, dtype=dtype)) for name, s in [("0", 4), ("1", 8)]
    )
    maps["unused"] = torch.randn(2, channels, 13, 13, dtype=dtype)
    maps.update((name, torch.randn(2, channels, 800 // s, 608 // s, dtype=dtype)) for name, s in [("2", 16), ("3", 32)])
    return maps


@pytest.mark.parametrize("names", [["0", "1", "2", "3"], ["1", "3"], ["2"]])
@pytest.mark.parametrize("output_size, sampling_ratio", [(7, 2), ((5, 3), -1)])
def test_multiscale_roi_align_matches_torchvision(names, output_size, sampling_ratio):
    # 810 > 4 x 200: the scales are rounded (not floored) powers of 2 of feature height / largest image height.
    maps, image_shapes = pyramid(), [(810, 608), (777, 590)]
    boxes = [level_boxes(3), level_boxes(2)]
    levels = map_levels(boxes, 2, 5)
    assert set(levels.tolist()) == {0, 1, 2, 3}  # every pyramid level is used
    ours = MultiScaleRoIAlign(names, output_size, sampling_ratio)(maps, boxes, image_shapes)
    expected = ReferenceMultiScaleRoIAlign(names, output_size, sampling_ratio)(maps, boxes, image_shapes)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_multiscale_roi_align_gradient_matches_torchvision():
    maps, image_shapes = pyramid(channels=2, dtype=torch.float64), [(800, 608), (800, 608)]
    for value in maps.values():
        value.requires_grad_(True)
    boxes = [level_boxes(1).double(), level_boxes(1).double()]
    names = ["0", "1", "2", "3"]
    ours = MultiScaleRoIAlign(names, 3, 2)(maps, boxes, image_shapes)
    expected = ReferenceMultiScaleRoIAlign(names, 3, 2)(maps, boxes, image_shapes)
    weight = torch.randn_like(ours)
    inputs = [maps[name] for name in names]
    ours_grads = torch.autograd.grad((ours * weight).sum(), inputs)
    expected_grads = torch.autograd.grad((expected * weight).sum(), inputs)
    for ours_grad, expected_grad in zip(ours_grads, expected_grads, strict=True):
        torch.testing.assert_close(ours_grad, expected_grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "k_min, k_max, canonical_scale, canonical_level", [(2, 5, 224, 4), (3, 6, 224, 4), (1, 3, 128, 2)]
)
def test_map_levels_matches_torchvision_level_mapper(dtype, k_min, k_max, canonical_scale, canonical_level):
    boxes = [level_boxes(20).to(dtype), level_boxes(5).to(dtype)]
    boxes[1][0] = torch.tensor([10, 10, 10, 30])  # zero area
    boxes[1][1] = torch.tensor([0, 0, canonical_scale, canonical_scale])  # exactly on a level boundary
    mapper = LevelMapper(k_min, k_max, canonical_scale=canonical_scale, canonical_level=canonical_level)
    ours = map_levels(boxes, k_min, k_max, canonical_scale, canonical_level)
    assert torch.equal(ours, mapper(boxes))
    assert torch.equal(map_levels(torch.cat(boxes), k_min, k_max, canonical_scale, canonical_level), ours)


def test_map_levels_closed_form():
    # k = floor(4 + log2(sqrt(w h) / 224) + 1e-6), clamped to [2, 5], minus k_min. The last box is a hair under
    # 224 x 224: log2 gives -7e-10, and only the eps keeps it on level 4.
    sides = torch.tensor([224.0, 112.0, 223.9, 448.0, 10.0, 5000.0, 0.0, 224.0], dtype=torch.float64)
    heights = sides.clone()
    heights[-1] = 224.0 * (1 - 1e-9)
    boxes = torch.stack([torch.zeros(8), torch.zeros(8), sides, heights], dim=1)
    assert map_levels(boxes, 2, 5).tolist() == [2, 1, 1, 3, 0, 3, 0, 2]
    assert map_levels([], 2, 5).shape == (0,)


def test_multiscale_roi_align_bad_arguments():
    maps, boxes = pyramid(), [level_boxes(1)]
    with pytest.raises(ValueError, match="none of the feature maps"):
        MultiScaleRoIAlign(["p2"], 7, 2)(maps, boxes, [(800, 608)])
    with pytest.raises(ValueError, match="image_shapes"):
        MultiScaleRoIAlign(["0"], 7, 2)(maps, boxes, [])
    maps["3"] = torch.randn(2, 5, 25, 19)
    with pytest.raises(ValueError, match="equal channels"):
        MultiScaleRoIAlign(["0", "3"], 7, 2)(maps, boxes, [(800, 608)])
    with pytest.raises(TypeError, match="featmap_names"):
        MultiScaleRoIAlign("0", 7, 2)
    with pytest.raises(TypeError, match="sampling_ratio"):
        MultiScaleRoIAlign(["0"], 7, 2.0)
    with pytest.raises(ValueError, match="positive"):
        MultiScaleRoIAlign(["0"], 0, 2)
    with pytest.raises(ValueError, match="k_min <= k_max"):
        map_levels(boxes, 5, 2)
