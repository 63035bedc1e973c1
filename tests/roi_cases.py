"""Random and edge-case RoIs shared by the RoI op tests (tests/ops/test_roi_*.py)."""

import torch

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
