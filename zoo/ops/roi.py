"""RoI pooling: RoIPool (Girshick, 2015), RoIAlign (He et al., 2017) and FPN's multi-scale RoIAlign (Lin et al., 2017).

Drop-in for ``torchvision.ops.roi_pool``, ``roi_align`` and ``MultiScaleRoIAlign``: same signatures, boxes as a
``Tensor[K, 5]`` of ``(batch index, x1, y1, x2, y2)`` or a list of per-image ``Tensor[L, 4]``, output
``[K, C, out_h, out_w]``, and the same arithmetic as torchvision's CPU kernels, so the values agree to rounding.

RoIPool rounds the scaled box to whole cells, ``x1' = round(s x1)`` (halves away from zero), spans
``w = max(x2' - x1' + 1, 1)`` cells, and takes the maximum over bin ``p`` = cells
``[floor(p w / P), ceil((p + 1) w / P))`` shifted by ``x1'`` and clipped to the map (an empty bin gives 0).

RoIAlign keeps the box continuous, ``x1' = s x1 - o`` with ``o = 0.5`` when ``aligned`` (pixel centres) else 0, and
(legacy, ``aligned=False``) widens degenerate boxes to 1 cell. Bin ``p`` of width ``b = w / P`` is averaged over
``g`` samples per axis, ``g = sampling_ratio`` or, when that is <= 0, ``g = ceil(w / P)`` for that RoI:

    x_i = x1' + p b + (i + 1/2) b / g,     i = 0 .. g - 1
    out = (1 / max(g_y g_x, 1)) Σ_{i,j} bilinear(F, y_i, x_j)

where a sample with ``y < -1``, ``y > H``, ``x < -1`` or ``x > W`` contributes 0, coordinates in ``[-1, 0]`` are
read at 0, and those past the last cell centre read the last cell.

Both ops are computed here as bags over the channels-last map ``[N H W, C]``: every output bin is a bag of cell
indices (with bilinear weights for RoIAlign), reduced by ``embedding_bag`` (weighted sum, or max). The bags are
built for all RoIs at once by broadcasting, padded to the largest per-RoI sample count of a group of similar RoIs
and stripped of the padding before the gather. Gradients flow to ``input`` by autograd (RoIPool's to the first
maximum of each bin in row-major order, as in torchvision); boxes get no gradient, as in torchvision. RoIs are
processed in chunks of about ``_BUDGET`` padded entries (tens of MB); only a RoI that alone has more samples than
that (an adaptive grid of ~100 x 100 samples per bin at 7 x 7 bins) exceeds it, as torchvision's own would.

Multi-scale RoIAlign assigns a box of area ``w h`` (image pixels) to pyramid level

    k = clamp(floor(k0 + log2(sqrt(w h) / 224) + eps), k_min, k_max)         (FPN, eq. 1)

and pools it from that level with the level's ``spatial_scale`` (feature size / image size, rounded to a power of 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.ops.boxes import box_area

__all__ = ["roi_pool", "roi_align", "map_levels", "MultiScaleRoIAlign"]

# torchvision's running maximum starts at -FLT_MAX whatever the dtype, so a bin of -inf pools to this value.
_FLOAT32_LOWEST = -3.4028234663852886e38
# Peak working memory per chunk of RoIs, in padded (cell, weight) entries of the bins' bags (~20 bytes each).
_BUDGET = 1 << 21

Boxes = Tensor | Sequence[Tensor]


# --------------------------------------------------------------------------------------------- argument checks


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_input(input: Tensor) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"input: expected a torch.Tensor [N, C, H, W], got {type(input).__name__}")
    if input.dim() != 4:
        raise ValueError(f"input: expected a 4-D tensor [N, C, H, W], got shape {list(input.shape)}")
    if not input.is_floating_point():
        raise TypeError(f"input: expected a floating-point tensor, got {input.dtype}")


def _check_output_size(output_size: int | Sequence[int]) -> tuple[int, int]:
    size = (output_size, output_size) if _is_int(output_size) else output_size
    if not isinstance(size, Sequence) or len(size) != 2 or not all(_is_int(s) for s in size):
        raise TypeError(f"output_size: expected an int or a pair of ints (height, width), got {output_size!r}")
    if size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"output_size: expected positive sizes, got {tuple(size)}")
    return int(size[0]), int(size[1])


def _check_spatial_scale(spatial_scale: float) -> None:
    if not isinstance(spatial_scale, Real) or isinstance(spatial_scale, bool):
        raise TypeError(f"spatial_scale: expected a float, got {type(spatial_scale).__name__}")
    if not 0 < spatial_scale < float("inf"):
        raise ValueError(f"spatial_scale: expected a positive finite number, got {spatial_scale}")


def _as_rois(boxes: Boxes, input: Tensor) -> Tensor:
    """Validated ``[K, 5]`` RoIs in ``input``'s dtype and device, detached (torchvision gives boxes no gradient).

    Geometry runs in the input's precision (torchvision's arithmetic); half-precision maps get float32 geometry.
    """
    dtype = input.dtype if input.dtype in (torch.float32, torch.float64) else torch.float32
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(
                "boxes: expected a Tensor[K, 5] of (batch index, x1, y1, x2, y2) or a list of Tensor[L, 4], "
                f"got a tensor of shape {list(boxes.shape)}"
            )
        rois = boxes
    elif isinstance(boxes, Sequence):
        for i, per_image in enumerate(boxes):
            if not isinstance(per_image, Tensor):
                raise TypeError(f"boxes[{i}]: expected a Tensor[L, 4], got {type(per_image).__name__}")
            if per_image.dim() != 2 or per_image.shape[1] != 4:
                raise ValueError(f"boxes[{i}]: expected shape [L, 4], got {list(per_image.shape)}")
        rois = torch.cat(
            [torch.zeros(0, 5, dtype=dtype, device=input.device)]
            + [F.pad(b.to(input.device, dtype), (1, 0), value=float(i)) for i, b in enumerate(boxes)]
        )
    else:
        raise TypeError(f"boxes: expected a Tensor[K, 5] or a list of Tensor[L, 4], got {type(boxes).__name__}")
    rois = rois.detach().to(device=input.device, dtype=dtype)
    bad = ~torch.isfinite(rois).all(dim=1)
    if bad.any():
        index = int(bad.nonzero()[0])
        raise ValueError(f"boxes: expected finite coordinates, RoI {index} is {rois[index].tolist()}")
    # The batch index is truncated towards zero, like torchvision's int cast.
    batch = rois[:, 0].long()
    bad = (batch < 0) | (batch >= input.shape[0])
    if bad.any():
        index = int(bad.nonzero()[0])
        raise ValueError(
            f"boxes: batch index must be in [0, {input.shape[0] - 1}] for an input of {input.shape[0]} images, "
            f"RoI {index} has {rois[index, 0].item()}"
        )
    return rois


# --------------------------------------------------------------------------------------------- shared machinery


def _channels_last_table(input: Tensor) -> Tensor:
    """``[N H W, C]`` view/copy of the map: one row per cell, so a gather reads C contiguous values."""
    return input.permute(0, 2, 3, 1).contiguous().view(-1, input.shape[1])


def _size_groups(sizes: Tensor, cost_per_unit: int, budget: int, octaves: int) -> list[Tensor]:
    """RoI indices grouped by size and cut into chunks of about ``budget`` padded elements.

    A chunk pads every RoI to the largest of its per-axis ``sizes`` ``[K, 2]`` (which cost ``cost_per_unit`` per
    unit of area); a group spans ``octaves`` powers of 2 per axis, so padding wastes less than ``2**octaves`` per
    axis. Equal sizes (a fixed sampling ratio, say) make one group in RoI order. Bounds peak memory; the loop runs
    over a handful of size classes, each chunk fully vectorised.
    """
    size_class = torch.ceil(torch.log2(sizes.clamp_min(1).double())).long() // octaves
    key = size_class[:, 0] * (int(size_class[:, 1].max()) + 1) + size_class[:, 1]
    order = torch.argsort(key, stable=True)
    chunks = []
    for group in torch.split(order, torch.unique_consecutive(key[order], return_counts=True)[1].tolist()):
        padded = int(sizes[group].amax(dim=0).prod()) * cost_per_unit
        chunks.extend(torch.split(group, max(1, budget // max(padded, 1))))
    return chunks


def _in_roi_order(pieces: list[Tensor], chunks: list[Tensor], num_rois: int) -> Tensor:
    """Per-chunk bin results ``[k * bins, C]`` → ``[K * bins, C]`` in RoI order."""
    bins = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    order = torch.cat(chunks)
    if torch.equal(order, torch.arange(num_rois, device=order.device)):
        return bins
    return bins.view(num_rois, -1, bins.shape[-1])[torch.argsort(order)].flatten(0, 1)


def _outer(rows: Tensor, cols: Tensor, op) -> Tensor:
    """``op(rows[k, out_h, a], cols[k, out_w, b])`` for every bin and pair, flattened in (k, out_h, out_w, a, b)
    order: each bin's bag, contiguous. Both sides are first spread to ``[k, P, a * b]`` (small), since one 4-D
    broadcast is several times faster than a 5-D one with short inner dimensions."""
    k, a, b = len(rows), rows.shape[2], cols.shape[2]
    rows = rows[:, :, :, None].expand(-1, -1, a, b).reshape(k, rows.shape[1], a * b)
    cols = cols[:, :, None, :].expand(-1, -1, a, b).reshape(k, cols.shape[1], a * b)
    return op(rows[:, :, None, :], cols[:, None, :, :]).flatten()


def _reduce_bags(
    table: Tensor,
    cells: Tensor,
    real: tuple[Tensor, Tensor],
    bag_size: Tensor,
    mode: str,
    weights: Tensor | None = None,
) -> Tensor:
    """Reduce each bin's bag of ``table`` rows (``mode`` "sum" or "max") → ``[bins, C]``.

    ``cells`` (and ``weights``) come from :func:`_outer`, padded; ``real`` holds its row and column masks, and the
    padding is dropped first, so the gather, the expensive part (C values per entry), reads real cells only.
    """
    if len(cells) > bag_size.sum():
        keep = _outer(*real, torch.logical_and).nonzero().squeeze(1)
        cells, weights = cells[keep], None if weights is None else weights[keep]
    offsets = torch.cumsum(bag_size, 0) - bag_size
    return F.embedding_bag(cells, table, offsets, mode=mode, per_sample_weights=weights)


def _empty_output(input: Tensor, output_size: tuple[int, int]) -> Tensor:
    return input.new_zeros((0, input.shape[1], *output_size))


def _finish(bins: Tensor, num_rois: int, output_size: tuple[int, int]) -> Tensor:
    """``[K * out_h * out_w, C]`` bag results → contiguous ``[K, C, out_h, out_w]``."""
    return bins.view(num_rois, *output_size, -1).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------------------------- RoIPool


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
    cells = _outer(row, col0[:, :, None] + step_w, torch.add)
    real = (step_h < num_rows[:, :, None], step_w < num_cols[:, :, None])
    bag_size = (num_rows[:, :, None] * num_cols[:, None, :]).flatten()
    pooled = _reduce_bags(table, cells, real, bag_size, "max")
    # Nothing above -FLT_MAX (an empty bin, or only -inf): torchvision keeps its initial value, no gradient.
    pooled = torch.where(pooled > _FLOAT32_LOWEST, pooled, _FLOAT32_LOWEST)
    return pooled.masked_fill((bag_size == 0)[:, None], 0.0)


def roi_pool(input: Tensor, boxes: Boxes, output_size: int | Sequence[int], spatial_scale: float = 1.0) -> Tensor:
    """RoI max pooling (Fast R-CNN), drop-in for ``torchvision.ops.roi_pool``.

    ``input``: ``[N, C, H, W]``; ``boxes``: ``Tensor[K, 5]`` of (batch index, x1, y1, x2, y2) or a list of per-image
    ``Tensor[L, 4]``; ``output_size``: int or (height, width); ``spatial_scale`` maps box to feature-map coordinates.
    Returns ``[K, C, out_h, out_w]``; a bin that falls outside the map is 0.
    """
    _check_input(input)
    output_size = _check_output_size(output_size)
    _check_spatial_scale(spatial_scale)
    rois = _as_rois(boxes, input)
    if len(rois) == 0:
        return _empty_output(input, output_size)
    shape = (input.shape[2], input.shape[3])
    (row0, rows), (col0, cols) = _pool_geometry(rois, spatial_scale, output_size, shape)
    table, batch = _channels_last_table(input), rois[:, 0].long()
    table = table.masked_fill(table.isnan(), float("-inf"))  # torchvision's `value > max` never picks a NaN
    largest_bin = torch.stack([rows.amax(dim=1), cols.amax(dim=1)], dim=1)
    chunks = _size_groups(largest_bin, output_size[0] * output_size[1], _BUDGET, octaves=2)
    pieces = [_roi_pool_bins(table, batch[i], (row0[i], rows[i]), (col0[i], cols[i]), shape) for i in chunks]
    return _finish(_in_roi_order(pieces, chunks, len(rois)), len(rois), output_size)


# --------------------------------------------------------------------------------------------- RoIAlign


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


def _roi_align_bins(table: Tensor, batch: Tensor, geometry, output_size: tuple[int, int], shape: tuple[int, int]):
    """Average of every bin, ``[k * out_h * out_w, C]``: one weighted bag of g_y g_x samples x 4 taps per bin."""
    start, bin_size, grid, count = geometry
    (out_h, out_w), (height, width), k = output_size, shape, len(batch)
    samples_x, samples_y = grid.amax(dim=0).tolist()
    x_cells, x_weights, x_real = _align_taps(start[:, 0], bin_size[:, 0], grid[:, 0], out_w, samples_x, width)
    y_cells, y_weights, y_real = _align_taps(start[:, 1], bin_size[:, 1], grid[:, 1], out_h, samples_y, height)
    # Bag entries in (i_y, y tap, i_x, x tap) order: torchvision's terms, summed in another order.
    row = ((batch[:, None, None, None] * height + y_cells) * width).view(k, out_h, -1)
    cells = _outer(row, x_cells.view(k, out_w, -1), torch.add)
    weights = _outer(
        (y_weights / count[:, None, None, None]).view(k, out_h, -1), x_weights.view(k, out_w, -1), torch.mul
    )
    real = (
        y_real[:, None, :, None].expand(-1, out_h, -1, 2).reshape(k, out_h, -1),
        x_real[:, None, :, None].expand(-1, out_w, -1, 2).reshape(k, out_w, -1),
    )
    bag_size = (4 * grid[:, 0] * grid[:, 1]).repeat_interleave(out_h * out_w)
    return _reduce_bags(table, cells, real, bag_size, "sum", weights.to(table.dtype))


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
    Returns ``[K, C, out_h, out_w]``.
    """
    _check_input(input)
    output_size = _check_output_size(output_size)
    _check_spatial_scale(spatial_scale)
    if not _is_int(sampling_ratio):
        raise TypeError(f"sampling_ratio: expected an int, got {type(sampling_ratio).__name__}")
    rois = _as_rois(boxes, input)
    if len(rois) == 0:
        return _empty_output(input, output_size)
    geometry = _align_geometry(rois, spatial_scale, output_size, int(sampling_ratio), bool(aligned))
    table, batch, shape = _channels_last_table(input), rois[:, 0].long(), (input.shape[2], input.shape[3])
    # Padded samples cost index arithmetic only (they are dropped before the gather): coarse size classes.
    chunks = _size_groups(geometry[2], 4 * output_size[0] * output_size[1], _BUDGET, octaves=2)
    pieces = [_roi_align_bins(table, batch[i], [part[i] for part in geometry], output_size, shape) for i in chunks]
    return _finish(_in_roi_order(pieces, chunks, len(rois)), len(rois), output_size)


# --------------------------------------------------------------------------------------------- multi-scale


def map_levels(
    boxes: Tensor | Sequence[Tensor],
    k_min: int,
    k_max: int,
    canonical_scale: float = 224,
    canonical_level: int = 4,
    eps: float = 1e-6,
) -> Tensor:
    """FPN level of each xyxy box (eq. 1), returned as an index into the levels ``k_min .. k_max`` (0 = ``k_min``).

    ``k = clamp(floor(canonical_level + log2(sqrt(area) / canonical_scale) + eps), k_min, k_max)``, in the boxes'
    float dtype like torchvision's ``LevelMapper``; ``boxes`` may be one ``[N, 4]`` tensor or a list of them.
    """
    if not (_is_int(k_min) and _is_int(k_max)):
        raise TypeError(f"k_min, k_max: expected ints, got {k_min!r} and {k_max!r}")
    if k_min > k_max:
        raise ValueError(f"k_min, k_max: expected k_min <= k_max, got {k_min} > {k_max}")
    if not isinstance(boxes, Tensor):
        boxes = torch.cat(list(boxes)) if len(boxes) else torch.zeros(0, 4)
    scale = torch.sqrt(box_area(boxes))
    level = torch.floor(canonical_level + torch.log2(scale / canonical_scale) + torch.tensor(eps, dtype=scale.dtype))
    return level.clamp(k_min, k_max).long() - k_min


def _level_exponent(feature: Tensor, image_height: int) -> int:
    """``e`` with ``2**e`` ≈ feature height / image height, rounded in float32 as torchvision infers its scales."""
    ratio = feature.shape[-2] / image_height
    if not ratio > 0:
        raise ValueError(f"x: feature maps must have a positive height, got shape {list(feature.shape)}")
    return int(torch.tensor(ratio, dtype=torch.float32).log2().round())


class MultiScaleRoIAlign(nn.Module):
    """RoIAlign over a feature pyramid (FPN), drop-in for ``torchvision.ops.MultiScaleRoIAlign``.

    Each box is pooled from the level chosen by :func:`map_levels`; a level's ``spatial_scale`` is its height over
    the largest image height, rounded to a power of 2, and the levels (in the dict's order, filtered by
    ``featmap_names``) are taken as consecutive powers of 2 from fine to coarse. ``aligned=False``, as torchvision.
    Unlike torchvision, which infers the scales on the first call and keeps them, they are inferred on every call.
    """

    def __init__(
        self,
        featmap_names: Sequence[str],
        output_size: int | Sequence[int],
        sampling_ratio: int,
        *,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ) -> None:
        super().__init__()
        if isinstance(featmap_names, str) or not all(isinstance(name, str) for name in featmap_names):
            raise TypeError(f"featmap_names: expected a list of str, got {featmap_names!r}")
        if not _is_int(sampling_ratio):
            raise TypeError(f"sampling_ratio: expected an int, got {type(sampling_ratio).__name__}")
        self.featmap_names = list(featmap_names)
        self.output_size = _check_output_size(output_size)
        self.sampling_ratio = int(sampling_ratio)
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def forward(self, x: dict[str, Tensor], boxes: Boxes, image_shapes: Sequence[tuple[int, int]]) -> Tensor:
        """``x``: feature maps by name; ``boxes``: per-image ``[L, 4]`` xyxy boxes in image pixels;
        ``image_shapes``: (height, width) of each image before the backbone. Returns ``[K, C, out_h, out_w]``."""
        features = [value for name, value in x.items() if name in self.featmap_names]
        if not features:
            raise ValueError(f"x: none of the feature maps {self.featmap_names} is among {list(x)}")
        for feature in features:
            _check_input(feature)
        channels = {int(feature.shape[1]) for feature in features}  # ints: under tracing shapes are tensors
        if len(channels) > 1:
            raise ValueError(f"x: the pooled feature maps must have equal channels, got {sorted(channels)}")
        if not image_shapes:
            raise ValueError("image_shapes: expected the (height, width) of at least one image, got none")
        image_height = max(int(shape[0]) for shape in image_shapes)
        exponents = [_level_exponent(feature, image_height) for feature in features]
        rois = _as_rois(boxes, features[0])
        # Levels from the boxes as given (their own dtype), as torchvision's LevelMapper does.
        image_boxes = boxes[:, 1:] if isinstance(boxes, Tensor) else boxes
        levels = map_levels(image_boxes, -exponents[0], -exponents[-1], self.canonical_scale, self.canonical_level)
        result = features[0].new_zeros((len(rois), features[0].shape[1], *self.output_size))
        # One roi_align per pyramid level (a handful), each over all of that level's RoIs at once.
        for level, (feature, exponent) in enumerate(zip(features, exponents, strict=True)):
            index = torch.nonzero(levels == level).squeeze(1)
            if len(index):
                pooled = roi_align(feature, rois[index], self.output_size, 2.0**exponent, self.sampling_ratio)
                result = result.index_copy(0, index, pooled.to(result.dtype))
        return result

    def extra_repr(self) -> str:
        return (
            f"featmap_names={self.featmap_names}, output_size={self.output_size}, sampling_ratio={self.sampling_ratio}"
        )
