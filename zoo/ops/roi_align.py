"""RoIAlign (He et al., 2017), drop-in for ``torchvision.ops.roi_align``: same signature, same arithmetic as
torchvision's CPU kernel, so the values agree to rounding.

RoIAlign keeps the box continuous, ``x1' = s x1 - o`` with ``o = 0.5`` when ``aligned`` (pixel centres) else 0, and
(legacy, ``aligned=False``) widens degenerate boxes to 1 cell. Bin ``p`` of width ``b = w / P`` is averaged over
``g`` samples per axis, ``g = sampling_ratio`` or, when that is <= 0, ``g = ceil(w / P)`` for that RoI:

    x_i = x1' + p b + (i + 1/2) b / g,     i = 0 .. g - 1
    out = (1 / max(g_y g_x, 1)) Σ_{i,j} bilinear(F, y_i, x_j)

where a sample with ``y < -1``, ``y > H``, ``x < -1`` or ``x > W`` contributes 0, coordinates in ``[-1, 0]`` are
read at 0, and those past the last cell centre read the last cell. Each bin is a weighted bag of its samples' four
bilinear taps, summed by ``embedding_bag`` (see :mod:`zoo.ops._roi_common`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from zoo.ops._graph import is_fx_proxy
from zoo.ops._roi_common import (
    MAX_ENTRIES_PER_ROI,
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
    is_int,
    outer,
    register_backward,
    size_groups,
    sum_bags,
    table_to_input,
)

__all__ = ["roi_align"]


def _align_geometry(rois: Tensor, scale: float, output_size: tuple[int, int], sampling_ratio: int, aligned: bool):
    """Per RoI: box start ``[K, 2]`` and bin size ``[K, 2]`` as (x, y), samples per bin and axis ``[K, 2]``, and
    the divisor of each bin's sum ``[K]``, with torchvision's arithmetic (in the RoI dtype)."""
    dtype = rois.dtype
    corners = rois[:, 1:] * torch.tensor(scale, dtype=dtype) - (0.5 if aligned else 0.0)
    start, size = corners[:, :2], corners[:, 2:] - corners[:, :2]
    if not aligned:
        size = size.clamp_min(1.0)  # legacy: malformed RoIs become 1 x 1
    bin_size = size / torch.tensor([output_size[1], output_size[0]], dtype=dtype, device=rois.device)
    if sampling_ratio > 0:
        grid = torch.full_like(bin_size, sampling_ratio, dtype=torch.long)
    else:
        grid = torch.ceil(bin_size).long()  # ceil(roi size / output size), per RoI and axis
    count = (grid[:, 0] * grid[:, 1]).clamp_min(1).to(dtype)
    return start, bin_size, grid.clamp_min(0), count  # a negative grid (inverted aligned RoI) samples nothing


def _align_taps(start: Tensor, bin_size: Tensor, grid: Tensor, pooled: int, samples: int, limit: int):
    """Bilinear taps along one axis for every RoI, bin and sample, the samples padded to ``samples``.

    Returns the (low, high) cells and their weights, ``[k, pooled, samples, 2]``, and which samples are real,
    ``[k, samples]``. A padded sample, or one outside ``[-1, limit]``, weighs 0.
    """
    dtype = start.dtype
    cell = torch.arange(pooled, device=start.device, dtype=dtype)[:, None]
    offset = torch.arange(samples, device=start.device, dtype=dtype) + 0.5
    size, steps = bin_size[:, None, None], grid.clamp_min(1).to(dtype)[:, None, None]
    # torchvision's operation order, each step rounded in the RoI dtype: (start + p b) + ((i + 0.5) b) / g
    coord = (start[:, None, None] + cell * size) + offset * size / steps
    real = torch.arange(samples, device=start.device) < grid[:, None]
    inside = (coord >= -1) & (coord <= limit) & real[:, None, :]
    coord = coord.clamp(0, limit)  # [-1, 0] reads cell 0; clamping at `limit` only keeps dropped taps in range
    low = coord.long().clamp_max(limit - 1)
    frac = coord - low.to(dtype)
    cells = torch.stack([low, (low + 1).clamp_max(limit - 1)], dim=-1)  # past the last centre both read the last
    weights = torch.stack([1 - frac, frac], dim=-1) * inside[..., None]
    return cells, weights, real


def _roi_align_bins(
    table: Tensor, batch: Tensor, geometry, output_size: tuple[int, int], shape: tuple[int, int], backward=None
):
    """Average of every bin, ``[k * out_h * out_w, C]``: one weighted bag of g_y g_x samples x 4 taps per bin.
    With ``backward`` (see :func:`~zoo.ops._roi_common.sum_bags`), the table's gradient instead."""
    start, bin_size, grid, count = geometry
    (out_h, out_w), (height, width), k = output_size, shape, len(batch)
    samples_x, samples_y = grid.amax(dim=0).tolist()
    x_cells, x_weights, x_real = _align_taps(start[:, 0], bin_size[:, 0], grid[:, 0], out_w, samples_x, width)
    y_cells, y_weights, y_real = _align_taps(start[:, 1], bin_size[:, 1], grid[:, 1], out_h, samples_y, height)
    # Bag entries in (i_y, y tap, i_x, x tap) order: torchvision's terms, summed in another order.
    row = ((batch[:, None, None, None] * height + y_cells) * width).view(k, out_h, -1)
    cells = outer(row, x_cells.view(k, out_w, -1), torch.add)
    weights = outer(
        (y_weights / count[:, None, None, None]).view(k, out_h, -1), x_weights.view(k, out_w, -1), torch.mul
    )
    real = (
        y_real[:, None, :, None].expand(-1, out_h, -1, 2).reshape(k, out_h, -1),
        x_real[:, None, :, None].expand(-1, out_w, -1, 2).reshape(k, out_w, -1),
    )
    bag_size = (4 * grid[:, 0] * grid[:, 1]).repeat_interleave(out_h * out_w)
    return sum_bags(table, cells, real, bag_size, weights.to(table.dtype), backward)


def _roi_align_forward(
    input: Tensor,
    rois: Tensor,
    spatial_scale: float,
    output_size: tuple[int, int],
    sampling_ratio: int,
    aligned: bool,
    grad: Tensor | None = None,
) -> Tensor:
    """RoIAlign of validated arguments; with ``grad`` (of the output), the gradient of ``input`` instead."""
    check_rois(rois, input.shape[0])
    if len(rois) == 0:
        return empty_output(input, output_size) if grad is None else torch.zeros_like(input)
    geometry = _align_geometry(rois, spatial_scale, output_size, sampling_ratio, aligned)
    table, batch, shape = channels_last_table(input), rois[:, 0].long(), (input.shape[2], input.shape[3])
    # Padded samples cost index arithmetic only (they are dropped before the gather): coarse size classes.
    chunks = size_groups(geometry[2], 4 * output_size[0] * output_size[1], octaves=2)
    if grad is not None:
        grad_table = torch.zeros_like(table)
        for i in chunks:
            backward = (gradient_bins(grad.to(table.dtype), i), grad_table)
            _roi_align_bins(table, batch[i], [part[i] for part in geometry], output_size, shape, backward)
        return table_to_input(grad_table, input)
    pieces = [_roi_align_bins(table, batch[i], [part[i] for part in geometry], output_size, shape) for i in chunks]
    return bins_to_output(in_roi_order(pieces, chunks, len(rois)), len(rois), output_size)


# The registered operator (what compile / export / fx record as one node; see zoo.ops._graph) and its backward.
@torch.library.custom_op("zoo::roi_align", mutates_args=())
def _roi_align_op(
    input: Tensor, rois: Tensor, spatial_scale: float, height: int, width: int, sampling_ratio: int, aligned: bool
) -> Tensor:
    return _roi_align_forward(input, rois, spatial_scale, (height, width), sampling_ratio, aligned)


@_roi_align_op.register_fake
def _(input, rois, spatial_scale, height, width, sampling_ratio, aligned):
    return input.new_empty((rois.shape[0], input.shape[1], height, width))


@torch.library.custom_op("zoo::roi_align_backward", mutates_args=())
def _roi_align_backward_op(
    grad: Tensor,
    input: Tensor,
    rois: Tensor,
    spatial_scale: float,
    height: int,
    width: int,
    sampling_ratio: int,
    aligned: bool,
) -> Tensor:
    return _roi_align_forward(input, rois, spatial_scale, (height, width), sampling_ratio, aligned, grad)


@_roi_align_backward_op.register_fake
def _(grad, input, rois, spatial_scale, height, width, sampling_ratio, aligned):
    return torch.empty_like(input)


register_backward(_roi_align_op, _roi_align_backward_op)


def roi_align(
    input: Tensor,
    boxes: Boxes,
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign (Mask R-CNN), drop-in for ``torchvision.ops.roi_align``.

    ``input``: ``[N, C, H, W]``; ``boxes``: ``Tensor[K, 5]`` of (batch index, x1, y1, x2, y2) or a list of per-image
    ``Tensor[L, 4]``; ``output_size``: int or (height, width); ``spatial_scale`` maps box to feature-map coordinates;
    ``sampling_ratio``: samples per bin and axis, or adaptive ``ceil(roi size / output size)`` when <= 0;
    ``aligned``: shift boxes by -0.5 cell (Detectron2) instead of the legacy 1-cell minimum size.
    Returns ``[K, C, out_h, out_w]``. Runs as the registered operator ``torch.ops.zoo.roi_align``, so it compiles
    (fullgraph) and exports.
    """
    output_size = check_output_size(output_size)
    if is_fx_proxy(input, boxes):
        return torch.ops.zoo.roi_align(input, boxes, spatial_scale, *output_size, sampling_ratio, aligned)
    check_input(input)
    check_spatial_scale(spatial_scale)
    if not is_int(sampling_ratio):
        raise TypeError(f"sampling_ratio: expected an int, got {type(sampling_ratio).__name__}")
    entries_per_roi = 4 * max(int(sampling_ratio), 1) ** 2 * output_size[0] * output_size[1]
    if entries_per_roi > MAX_ENTRIES_PER_ROI:
        raise ValueError(
            f"sampling_ratio: {sampling_ratio} samples per bin and axis would need {entries_per_roi:.3g} bilinear taps "
            f"per RoI (at most {MAX_ENTRIES_PER_ROI:.3g}); torchvision's models use 2, or -1 for adaptive sampling"
        )
    rois = as_rois(boxes, input)
    return torch.ops.zoo.roi_align(input, rois, float(spatial_scale), *output_size, int(sampling_ratio), bool(aligned))
