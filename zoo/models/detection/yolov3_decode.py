"""YOLOv3's decoding (Redmon & Farhadi, 2018, "YOLOv3: An Incremental Improvement", arXiv:1804.02767, §2.1-2.2).

At cell (c_x, c_y) of a level of stride s, with anchor (p_w, p_h) in input pixels:
    b_x = (σ(t_x) + c_x)·s,   b_y = (σ(t_y) + c_y)·s,   b_w = p_w·exp(t_w),   b_h = p_h·exp(t_h)
    score of class c = σ(t_obj)·σ(t_c)            (independent logistic classifiers, no softmax; §2.2)
(t_w, t_h are clamped at log(1000/16) before exp, as torchvision's BoxCoder does, so a box cannot overflow.)
A prediction is a row (t_x, t_y, t_w, t_h, t_obj, t_c...) of the flattened head outputs ``[N, P, 5 + C]``
(:func:`~zoo.models.detection.dense.flatten_levels`: level, row, column, anchor).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["MAX_LOG_SCALE", "decode_boxes", "decode_scores", "grid_sizes", "prediction_grid"]

# exp(t_w) is clamped as torchvision's BoxCoder does (bbox_xform_clip), so a decoded box stays finite.
MAX_LOG_SCALE = math.log(1000.0 / 16)


def grid_sizes(raw_outputs: Sequence[Tensor]) -> list[tuple[int, int]]:
    """``(rows, columns)`` of each level's head output."""
    return [(int(raw.shape[-2]), int(raw.shape[-1])) for raw in raw_outputs]


def prediction_grid(
    anchors: Tensor, sizes: Sequence[tuple[int, int]], input_size: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor]:
    """Per prediction, in the flattened order: its cell ``(c_x, c_y)``, anchor ``(p_w, p_h)`` and stride
    ``(s_x, s_y)``, each ``[P, 2]``, for ``anchors [L, A, 2]`` and levels of ``sizes`` (rows, columns)."""
    cells, anchor_sizes, strides = [], [], []
    num_anchors, device = anchors.shape[1], anchors.device
    for (height, width), level_anchors in zip(sizes, anchors, strict=True):  # three levels
        rows, columns = torch.meshgrid(
            torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij"
        )
        cell = torch.stack([columns, rows], dim=-1).reshape(-1, 2).float()
        cells.append(cell.repeat_interleave(num_anchors, dim=0))  # a cell's anchors are consecutive
        anchor_sizes.append(level_anchors.repeat(height * width, 1))
        stride = torch.tensor([input_size[1] / width, input_size[0] / height], device=device)
        strides.append(stride.expand(num_anchors * height * width, 2))
    return torch.cat(cells), torch.cat(anchor_sizes), torch.cat(strides)


def decode_boxes(
    predictions: Tensor, anchors: Tensor, sizes: Sequence[tuple[int, int]], input_size: tuple[int, int]
) -> Tensor:
    """xyxy boxes ``[N, P, 4]`` in input pixels from flattened predictions ``[N, P, 5 + C]`` (§2.1)."""
    cells, anchor_sizes, strides = prediction_grid(anchors, sizes, input_size)
    centres = (predictions[..., :2].sigmoid() + cells) * strides
    box_sizes = anchor_sizes * predictions[..., 2:4].clamp(max=MAX_LOG_SCALE).exp()
    return torch.cat([centres - box_sizes / 2, centres + box_sizes / 2], dim=-1)


def decode_scores(predictions: Tensor) -> Tensor:
    """Class scores ``[N, P, C] = σ(t_obj)·σ(t_c)`` from flattened predictions ``[N, P, 5 + C]`` (§2.2)."""
    return predictions[..., 4:5].sigmoid() * predictions[..., 5:].sigmoid()
