"""Gaussian radius against the CornerNet geometry (IoU of the displaced boxes) and the published formula;
Gaussian splats against the closed form and the published drawing routine."""

import math

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from zoo.ops.heatmap import draw_gaussian, draw_gaussians, gaussian_radius, gaussian_radius_cases

OVERLAPS = [0.3, 0.5, 0.7, 0.9]


def displaced_box_iou(height, width, radius, case):
    """IoU of a height x width box with its worst-case version whose corners moved by ``radius`` in x and y."""
    h, w, r = (torch.as_tensor(v, dtype=torch.float64) for v in (height, width, radius))
    zero = torch.zeros_like(h)
    gt = torch.stack([zero, zero, w, h], dim=-1)
    moved = {
        1: torch.stack([r, r, w + r, h + r], dim=-1),  # translated
        2: torch.stack([r, r, w - r, h - r], dim=-1),  # shrunk inside
        3: torch.stack([-r, -r, w + r, h + r], dim=-1),  # grown around
    }[case]
    return box_iou(gt, moved).diagonal()


@pytest.mark.parametrize("overlap", OVERLAPS)
def test_each_case_radius_is_where_iou_reaches_min_overlap(overlap):
    height, width = torch.rand(30, dtype=torch.float64) * 100 + 1, torch.rand(30, dtype=torch.float64) * 100 + 1
    for case, radius in enumerate(gaussian_radius_cases(height, width, overlap), start=1):
        at = displaced_box_iou(height, width, radius, case)
        torch.testing.assert_close(at, torch.full_like(at, overlap), rtol=1e-9, atol=0)
        assert (displaced_box_iou(height, width, radius * (1 + 1e-6), case) < overlap).all()
        assert (displaced_box_iou(height, width, radius * (1 - 1e-6), case) > overlap).all()


@pytest.mark.parametrize("overlap", OVERLAPS)
def test_radius_keeps_every_case_above_min_overlap(overlap):
    height, width = torch.rand(30, dtype=torch.float64) * 100 + 1, torch.rand(30, dtype=torch.float64) * 100 + 1
    radius = gaussian_radius(height, width, overlap)
    worst = torch.stack([displaced_box_iou(height, width, radius, case) for case in (1, 2, 3)]).min(0).values
    assert (worst >= overlap - 1e-12).all()
    torch.testing.assert_close(worst, torch.full_like(worst, overlap), rtol=1e-9, atol=0)  # and it is tight
    bigger = torch.stack([displaced_box_iou(height, width, radius * 1.001, case) for case in (1, 2, 3)])
    assert (bigger.min(0).values < overlap).all()


def published_gaussian_radius(det_size, min_overlap=0.7):
    # CornerNet / CenterNet's gaussian_radius as published (utils/image.py), bug included.
    height, width = det_size
    a1 = 1
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    sq1 = np.sqrt(b1**2 - 4 * a1 * c1)
    r1 = (b1 + sq1) / 2
    a2 = 4
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    sq2 = np.sqrt(b2**2 - 4 * a2 * c2)
    r2 = (b2 + sq2) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    sq3 = np.sqrt(b3**2 - 4 * a3 * c3)
    r3 = (b3 + sq3) / 2
    return min(r1, r2, r3)


@pytest.mark.parametrize("overlap", [0.1, 0.5, 0.7, 0.99, 1.0])
def test_original_radius_matches_published_formula(overlap):
    sizes = [(1, 1), (3, 40), (40, 3), (17.5, 9.25), (128, 128), (0, 5), (0, 0)]
    for height, width in sizes:
        expected = published_gaussian_radius((height, width), overlap)
        assert gaussian_radius(height, width, overlap, original=True) == pytest.approx(expected, rel=1e-12, abs=0)
    heights = torch.tensor([h for h, _ in sizes], dtype=torch.float64)
    widths = torch.tensor([w for _, w in sizes], dtype=torch.float64)
    expected = torch.tensor([published_gaussian_radius(s, overlap) for s in sizes], dtype=torch.float64)
    torch.testing.assert_close(gaussian_radius(heights, widths, overlap, original=True), expected)


def test_radius_types_and_degenerate_boxes():
    assert isinstance(gaussian_radius(10, 20), float)
    assert gaussian_radius(0, 0) == 0.0 and gaussian_radius(0, 30) == 0.0
    assert gaussian_radius(10, 20, 1.0) == 0.0
    radius = gaussian_radius(torch.tensor([10, 0]), torch.tensor([20, 5]))
    assert radius.dtype == torch.float32 and radius.shape == (2,)
    assert radius[0].item() == pytest.approx(gaussian_radius(10.0, 20.0)) and radius[1].item() == 0.0
    with pytest.raises(ValueError, match="min_overlap"):
        gaussian_radius(10, 10, 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        gaussian_radius(-1, 10)
    with pytest.raises(TypeError, match="height"):
        gaussian_radius("10", 10)


def closed_form_gaussian(height, width, cx, cy, radius):
    sigma = (2 * radius + 1) / 6
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    dx, dy = (x - cx).double(), (y - cy).double()
    values = torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))
    return torch.where((dx.abs() <= radius) & (dy.abs() <= radius), values, 0.0).float()


def test_draw_gaussian_closed_form_peak_and_symmetry():
    heatmap = draw_gaussian(torch.zeros(15, 17), (8, 7), 4)
    torch.testing.assert_close(heatmap, closed_form_gaussian(15, 17, 8, 7, 4), rtol=0, atol=0)
    assert heatmap[7, 8] == 1 and heatmap.max() == 1
    window = heatmap[3:12, 4:13]
    assert torch.equal(window, window.flip(0)) and torch.equal(window, window.flip(1))
    assert torch.equal(window, window.T)
    assert heatmap[7, 12] == pytest.approx(math.exp(-16 / (2 * (9 / 6) ** 2)))
    assert heatmap[7, 13] == 0 and heatmap[2, 8] == 0


def test_draw_gaussian_radius_zero_and_truncated_centre():
    heatmap = draw_gaussian(torch.zeros(5, 5), torch.tensor([2.9, 1.2]), 0)
    expected = torch.zeros(5, 5)
    expected[1, 2] = 1  # int(2.9) = 2, int(1.2) = 1
    assert torch.equal(heatmap, expected)


def test_overlapping_objects_merge_by_maximum():
    heatmap = torch.zeros(2, 20, 20)
    centers = torch.tensor([[5, 5], [9, 7], [9, 7]])
    draw_gaussians(heatmap, centers, torch.tensor([4, 3, 6]), torch.tensor([0, 0, 1]))
    expected = torch.maximum(closed_form_gaussian(20, 20, 5, 5, 4), closed_form_gaussian(20, 20, 9, 7, 3))
    torch.testing.assert_close(heatmap[0], expected, rtol=0, atol=0)
    torch.testing.assert_close(heatmap[1], closed_form_gaussian(20, 20, 9, 7, 6), rtol=0, atol=0)
    # Existing values larger than the splat are kept.
    heatmap = torch.full((1, 20, 20), 0.5)
    draw_gaussians(heatmap, centers[:1], torch.tensor([4]), torch.tensor([0]))
    torch.testing.assert_close(heatmap[0], closed_form_gaussian(20, 20, 5, 5, 4).clamp(min=0.5), rtol=0, atol=0)


@pytest.mark.parametrize("center", [(0, 0), (11, 8), (0, 8), (11, 0), (14, 3), (-2, 4)])
def test_border_clipping(center):
    heatmap = draw_gaussian(torch.zeros(9, 12), center, 3)
    torch.testing.assert_close(heatmap, closed_form_gaussian(9, 12, *center, 3), rtol=0, atol=0)


def published_draw_umich_gaussian(heatmap, center, radius):
    # CenterNet's draw_umich_gaussian / gaussian2D as published (k = 1).
    diameter = 2 * radius + 1
    sigma = diameter / 6
    m = n = (diameter - 1.0) / 2.0
    y, x = np.ogrid[-m : m + 1, -n : n + 1]
    gaussian = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    gaussian[gaussian < np.finfo(gaussian.dtype).eps * gaussian.max()] = 0
    x, y = int(center[0]), int(center[1])
    height, width = heatmap.shape[0:2]
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    masked_heatmap = heatmap[y - top : y + bottom, x - left : x + right]
    masked_gaussian = gaussian[radius - top : radius + bottom, radius - left : radius + right]
    if min(masked_gaussian.shape) > 0 and min(masked_heatmap.shape) > 0:
        np.maximum(masked_heatmap, masked_gaussian, out=masked_heatmap)
    return heatmap


def test_many_objects_match_published_drawing():
    channels, height, width, count = 3, 40, 48, 25
    centers = torch.stack([torch.rand(count) * width, torch.rand(count) * height], dim=1)
    radii = torch.randint(0, 9, (count,))
    labels = torch.randint(0, channels, (count,))
    expected = np.zeros((channels, height, width), dtype=np.float32)
    for (x, y), radius, label in zip(centers.tolist(), radii.tolist(), labels.tolist(), strict=True):
        published_draw_umich_gaussian(expected[label], (x, y), radius)
    ours = draw_gaussians(torch.zeros(channels, height, width), centers, radii, labels)
    torch.testing.assert_close(ours, torch.from_numpy(expected), rtol=0, atol=0)
    # A non-contiguous heatmap is drawn into in place too.
    transposed = torch.zeros(channels, width, height).transpose(1, 2)
    draw_gaussians(transposed, centers, radii, labels)
    torch.testing.assert_close(transposed, torch.from_numpy(expected), rtol=0, atol=0)


def test_draw_errors_and_empty():
    heatmap = torch.zeros(2, 8, 8)
    assert draw_gaussians(heatmap, torch.zeros(0, 2), torch.zeros(0), torch.zeros(0, dtype=torch.long)) is heatmap
    assert heatmap.abs().sum() == 0
    one = torch.tensor([[3, 3]])
    with pytest.raises(ValueError, match="non-negative"):
        draw_gaussians(heatmap, one, torch.tensor([-1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="integers"):
        draw_gaussians(heatmap, one, torch.tensor([1.5]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        draw_gaussians(heatmap, one, torch.tensor([1]), torch.tensor([2]))
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        draw_gaussians(heatmap, torch.tensor([3, 3]), torch.tensor([1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="one per center"):
        draw_gaussians(heatmap, one, torch.tensor([1, 2]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        draw_gaussians(torch.zeros(8, 8), one, torch.tensor([1]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        draw_gaussian(heatmap, (3, 3), 1)
    with pytest.raises(TypeError, match="int"):
        draw_gaussian(heatmap[0], (3, 3), 1.0)
