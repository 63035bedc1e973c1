"""RoIPool (Girshick, 2015), drop-in for ``torchvision.ops.roi_pool``: same signature, same arithmetic as
torchvision's CPU kernel, so the values agree exactly.

RoIPool rounds the scaled box to whole cells, ``x1' = round(s x1)`` (halves away from zero), spans
``w = max(x2' - x1' + 1, 1)`` cells, and takes the maximum over bin ``p`` = cells
``[floor(p w / P), ceil((p + 1) w / P))`` shifted by ``x1'`` and clipped to the map (an empty bin gives 0).

Each bin is a bag of its cells reduced by ``embedding_bag``'s max (see :mod:`zoo.ops._roi_common`); the gradient
goes to the first maximum of each bin in row-major order, as in torchvision.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from zoo.ops._roi_common import (
    Boxes,
    as_rois,
    bins_to_output,
    channels_last_table,
    check_input,
    check_output_size,
    check_spatial_scale,
    empty_output,
    in_roi_order,
    outer,
    reduce_bags,
    size_groups,
)

__all__ = ["roi_pool"]

# torchvision's running maximum starts at -FLT_MAX whatever the dtype, so a bin of -inf pools to this value.
_FLOAT32_LOWEST = -3.4028234663852886e38


def _round_half_away(values: Tensor) -> Tensor:
    """C's ``round``: halves go away from zero (``torch.round`` sends them to even). Exact in float64."""
    values = values.double()
    return (torch.sign(values) * torch.floor(values.abs() + 0.5)).long()


def _pool_axis(first_cell: Tensor, bin_size: Tensor, pooled: int, limit: int) -> tuple[Tensor, Tensor]:
    """Per RoI and bin along one axis: the bin's first cell and its number of cells, clipped to ``[0, limit)``."""
    edges = torch.arange(pooled + 1, device=bin_size.device, dtype=bin_size.dtype) * bin_size[:, None]
    low = (torch.floor(edges[:, :-1]).long() + first_cell[:, None]).clamp(0, limit)
    high = (torch.ceil(edges[:, 1:]).long() + first_cell[:, None]).clamp(0, limit)
    return low, (high - low).clamp_min(0)


def _pool_geometry(rois: Tensor, scale: float, output_size: tuple[int, int], shape: tuple[int, int]):
    """Rows and columns of every bin: ``((first row, rows) [K, out_h], (first col, cols) [K, out_w])``."""
    corners = _round_half_away(rois[:, 1:] * torch.tensor(scale, dtype=rois.dtype))
    cells = (corners[:, 2:] - corners[:, :2] + 1).clamp_min(1).to(rois.dtype)  # malformed RoIs become 1 x 1
    rows = _pool_axis(corners[:, 1], cells[:, 1] / output_size[0], output_size[0], shape[0])
    cols = _pool_axis(corners[:, 0], cells[:, 0] / output_size[1], output_size[1], shape[1])
    return rows, cols


def _roi_pool_bins(table: Tensor, batch: Tensor, rows, cols, shape: tuple[int, int]) -> Tensor:
    """Max of every bin, ``[k * out_h * out_w, C]``: one bag per bin of its cells in row-major order.

    ``embedding_bag``'s max keeps the first maximum of a bag and sends the gradient there, as torchvision does.
    """
    (row0, num_rows), (col0, num_cols) = rows, cols
    height, width = shape
    step_h = torch.arange(max(int(num_rows.max()), 1), device=table.device)
    step_w = torch.arange(max(int(num_cols.max()), 1), device=table.device)
    row = (batch[:, None, None] * height + row0[:, :, None] + step_h) * width
    cells = outer(row, col0[:, :, None] + step_w, torch.add)
    real = (step_h < num_rows[:, :, None], step_w < num_cols[:, :, None])
    bag_size = (num_rows[:, :, None] * num_cols[:, None, :]).flatten()
    pooled = reduce_bags(table, cells, real, bag_size, "max")
    # Nothing above -FLT_MAX (an empty bin, or only -inf): torchvision keeps its initial value, no gradient.
    pooled = torch.where(pooled > _FLOAT32_LOWEST, pooled, _FLOAT32_LOWEST)
    return pooled.masked_fill((bag_size == 0)[:, None], 0.0)


def roi_pool(input: Tensor, boxes: Boxes, output_size: int | Sequence[int], spatial_scale: float = 1.0) -> Tensor:
    """RoI max pooling (Fast R-CNN), drop-in for ``torchvision.ops.roi_pool``.

    ``input``: ``[N, C, H, W]``; ``boxes``: ``Tensor[K, 5]`` of (batch index, x1, y1, x2, y2) or a list of per-image
    ``Tensor[L, 4]``; ``output_size``: int or (height, width); ``spatial_scale`` maps box to feature-map coordinates.
    Returns ``[K, C, out_h, out_w]``; a bin that falls outside the map is 0.
    """
    check_input(input)
    output_size = check_output_size(output_size)
    check_spatial_scale(spatial_scale)
    rois = as_rois(boxes, input)
    if len(rois) == 0:
        return empty_output(input, output_size)
    shape = (input.shape[2], input.shape[3])
    (row0, rows), (col0, cols) = _pool_geometry(rois, spatial_scale, output_size, shape)
    table, batch = channels_last_table(input), rois[:, 0].long()
    table = table.masked_fill(table.isnan(), float("-inf"))  # torchvision's `value > max` never picks a NaN
    largest_bin = torch.stack([rows.amax(dim=1), cols.amax(dim=1)], dim=1)
    chunks = size_groups(largest_bin, output_size[0] * output_size[1], octaves=2)
    pieces = [_roi_pool_bins(table, batch[i], (row0[i], rows[i]), (col0[i], cols[i]), shape) for i in chunks]
    return bins_to_output(in_roi_order(pieces, chunks, len(rois)), len(rois), output_size)
