"""zoo.ops.poolers against torchvision.ops (MultiScaleRoIAlign, poolers.LevelMapper) and FPN's eq. 1."""

from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign as ReferenceMultiScaleRoIAlign
from torchvision.ops.poolers import LevelMapper

from zoo.ops import MultiScaleRoIAlign, map_levels


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
