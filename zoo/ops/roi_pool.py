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

from zoo.ops._graph import is_fx_proxy
from zoo.ops._roi_common import (
    Boxes,
    as_rois,
    bins_to_output,
    channels_last_table,
    check_input,
    check_output_size,
    check_rois,
    check_spatial_scale,
    empty_output,
    gradient_bins,
    in_roi_order,
    max_bags,
    outer,
    register_backward,
    size_groups,
    table_to_input,
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


def _roi_pool_bins(table: Tensor, batch: Tensor, rows, cols, shape: tuple[int, int], backward=None) -> Tensor:
    """Max of every bin, ``[k * out_h * out_w, C]``: one bag per bin of its cells in row-major order.

    ``embedding_bag``'s max keeps the first maximum of a bag, where the gradient goes, as in torchvision. With
    ``backward = (grad of the bins, grad of the table)``, adds each bin's gradient at its maximum instead.
    """
    (row0, num_rows), (col0, num_cols) = rows, cols
    height, width = shape
    step_h = torch.arange(max(int(num_rows.max()), 1), device=table.device)
    step_w = torch.arange(max(int(num_cols.max()), 1), device=table.device)
    row = (batch[:, None, None] * height + row0[:, :, None] + step_h) * width
    cells = outer(row, col0[:, :, None] + step_w, torch.add)
    real = (step_h < num_rows[:, :, None], step_w < num_cols[:, :, None])
    bag_size = (num_rows[:, :, None] * num_cols[:, None, :]).flatten()
    pooled, argmax = max_bags(table, cells, real, bag_size)
    # Nothing above -FLT_MAX (an empty bin, or only -inf): torchvision keeps its initial value, no gradient.
    counted = (pooled > _FLOAT32_LOWEST) & (bag_size > 0)[:, None]
    if backward is not None:
        grad_bins, grad_table = backward
        channel = torch.arange(table.shape[1], device=table.device).expand_as(argmax)
        flat = (argmax * table.shape[1] + channel)[counted]
        return grad_table.view(-1).index_add_(0, flat, grad_bins[counted]).view_as(grad_table)
    pooled = torch.where(pooled > _FLOAT32_LOWEST, pooled, _FLOAT32_LOWEST)
    return pooled.masked_fill((bag_size == 0)[:, None], 0.0)


def _roi_pool_forward(
    input: Tensor, rois: Tensor, spatial_scale: float, output_size: tuple[int, int], grad: Tensor | None = None
) -> Tensor:
    """RoIPool of validated arguments; with ``grad`` (of the output), the gradient of ``input`` instead."""
    check_rois(rois, input.shape[0])
    if len(rois) == 0:
        return empty_output(input, output_size) if grad is None else torch.zeros_like(input)
    shape = (input.shape[2], input.shape[3])
    (row0, rows), (col0, cols) = _pool_geometry(rois, spatial_scale, output_size, shape)
    table, batch = channels_last_table(input), rois[:, 0].long()
    table = table.masked_fill(table.isnan(), float("-inf"))  # torchvision's `value > max` never picks a NaN
    largest_bin = torch.stack([rows.amax(dim=1), cols.amax(dim=1)], dim=1)
    chunks = size_groups(largest_bin, output_size[0] * output_size[1], octaves=2)
    if grad is not None:
        grad_table = torch.zeros_like(table)
        for i in chunks:
            backward = (gradient_bins(grad.to(table.dtype), i), grad_table)
            _roi_pool_bins(table, batch[i], (row0[i], rows[i]), (col0[i], cols[i]), shape, backward)
        return table_to_input(grad_table, input)
    pieces = [_roi_pool_bins(table, batch[i], (row0[i], rows[i]), (col0[i], cols[i]), shape) for i in chunks]
    return bins_to_output(in_roi_order(pieces, chunks, len(rois)), len(rois), output_size)


# The registered operator (what compile / export / fx record as one node; see zoo.ops._graph) and its backward.
@torch.library.custom_op("zoo::roi_pool", mutates_args=())
def _roi_pool_op(input: Tensor, rois: Tensor, spatial_scale: float, height: int, width: int) -> Tensor:
    return _roi_pool_forward(input, rois, spatial_scale, (height, width))


@_roi_pool_op.register_fake
def _(input, rois, spatial_scale, height, width):
    return input.new_empty((rois.shape[0], input.shape[1], height, width))


@torch.library.custom_op("zoo::roi_pool_backward", mutates_args=())
def _roi_pool_backward_op(
    grad: Tensor, input: Tensor, rois: Tensor, spatial_scale: float, height: int, width: int
) -> Tensor:
    return _roi_pool_forward(input, rois, spatial_scale, (height, width), grad)


@_roi_pool_backward_op.register_fake
def _(grad, input, rois, spatial_scale, height, width):
    return torch.empty_like(input)


register_backward(_roi_pool_op, _roi_pool_backward_op)


def roi_pool(input: Tensor, boxes: Boxes, output_size: int | Sequence[int], spatial_scale: float = 1.0) -> Tensor:
    """RoI max pooling (Fast R-CNN), drop-in for ``torchvision.ops.roi_pool``.

    ``input``: ``[N, C, H, W]``; ``boxes``: ``Tensor[K, 5]`` of (batch index, x1, y1, x2, y2) or a list of per-image
    ``Tensor[L, 4]``; ``output_size``: int or (height, width); ``spatial_scale`` maps box to feature-map coordinates.
    Returns ``[K, C, out_h, out_w]``; a bin that falls outside the map is 0. Runs as the registered operator
    ``torch.ops.zoo.roi_pool``, so it compiles (fullgraph) and exports.
    """
    output_size = check_output_size(output_size)
    if is_fx_proxy(input, boxes):
        return torch.ops.zoo.roi_pool(input, boxes, spatial_scale, *output_size)
    check_input(input)
    check_spatial_scale(spatial_scale)
    rois = as_rois(boxes, input)
    return torch.ops.zoo.roi_pool(input, rois, float(spatial_scale), *output_size)
