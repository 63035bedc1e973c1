"""Shared by RoIPool and RoIAlign: argument checks, and the bag machinery both ops are computed with.

Boxes are a ``Tensor[K, 5]`` of ``(batch index, x1, y1, x2, y2)`` or a list of per-image ``Tensor[L, 4]``, as in
``torchvision.ops``; outputs are ``[K, C, out_h, out_w]``.

Both ops are computed as bags over the channels-last map ``[N H W, C]``: every output bin is a bag of cell
indices (with bilinear weights for RoIAlign), reduced by ``embedding_bag`` (weighted sum, or max). The bags are
built for all RoIs at once by broadcasting, padded to the largest per-RoI sample count of a group of similar RoIs
and stripped of the padding before the gather. Gradients flow to ``input`` by autograd; boxes get no gradient, as
in torchvision. RoIs are processed in chunks of about ``BUDGET`` padded entries (tens of MB); only a RoI that alone
has more samples than that (an adaptive grid of ~100 x 100 samples per bin at 7 x 7 bins) exceeds it, as
torchvision's own would.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.ops._graph import check_all, check_supported_dtype

__all__ = [
    "BUDGET",
    "MAX_ENTRIES_PER_ROI",
    "Boxes",
    "as_rois",
    "bins_to_output",
    "channels_last_table",
    "check_input",
    "check_output_size",
    "check_rois",
    "check_spatial_scale",
    "empty_output",
    "in_roi_order",
    "gradient_bins",
    "is_int",
    "outer",
    "register_backward",
    "max_bags",
    "sum_bags",
    "table_to_input",
    "size_groups",
]

# The most bag entries one RoI may need (about 40 GB of working memory): a larger fixed sampling ratio is refused.
MAX_ENTRIES_PER_ROI = 1 << 31
# Peak working memory per chunk of RoIs, in padded (cell, weight) entries of the bins' bags (~20 bytes each).
BUDGET = 1 << 21

Boxes = Tensor | Sequence[Tensor]


# --------------------------------------------------------------------------------------------- argument checks


def is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_input(input: Tensor) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"input: expected a torch.Tensor [N, C, H, W], got {type(input).__name__}")
    check_supported_dtype(input, "input")
    if input.dim() != 4:
        raise ValueError(f"input: expected a 4-D tensor [N, C, H, W], got shape {list(input.shape)}")
    if not input.is_floating_point():
        raise TypeError(f"input: expected a floating-point tensor, got {input.dtype}")


def check_output_size(output_size: int | Sequence[int]) -> tuple[int, int]:
    size = (output_size, output_size) if is_int(output_size) else output_size
    if not isinstance(size, Sequence) or len(size) != 2 or not all(is_int(s) for s in size):
        raise TypeError(f"output_size: expected an int or a pair of ints (height, width), got {output_size!r}")
    if size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"output_size: expected positive sizes, got {tuple(size)}")
    return int(size[0]), int(size[1])


def check_spatial_scale(spatial_scale: float) -> None:
    if not isinstance(spatial_scale, Real) or isinstance(spatial_scale, bool):
        raise TypeError(f"spatial_scale: expected a float, got {type(spatial_scale).__name__}")
    if not 0 < spatial_scale < float("inf"):
        raise ValueError(f"spatial_scale: expected a positive finite number, got {spatial_scale}")


def as_rois(boxes: Boxes, input: Tensor) -> Tensor:
    """``[K, 5]`` RoIs in ``input``'s dtype and device, detached (torchvision gives boxes no gradient), their shape
    checked (their values are checked by :func:`check_rois`).

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
    return rois.detach().to(device=input.device, dtype=dtype)


def check_rois(rois: Tensor, batch_size: int) -> None:
    """The values of ``[K, 5]`` RoIs: finite, and batch indices of images that exist (checked by the registered
    ops, on the values)."""
    finite = torch.isfinite(rois).all(dim=1)

    def not_finite() -> str:
        index = int((~finite).nonzero()[0])
        return f"boxes: expected finite coordinates, RoI {index} is {rois[index].tolist()}"

    check_all(finite, not_finite, "boxes: expected finite coordinates")
    # The batch index is truncated towards zero, like torchvision's int cast.
    batch = rois[:, 0].long()
    exists = (batch >= 0) & (batch < batch_size)

    def missing() -> str:
        index = int((~exists).nonzero()[0])
        return (
            f"boxes: batch index must be in [0, {batch_size - 1}] for an input of {batch_size} images, "
            f"RoI {index} has {rois[index, 0].item()}"
        )

    check_all(exists, missing, "boxes: batch index out of range")


# --------------------------------------------------------------------------------------------- shared machinery


def channels_last_table(input: Tensor) -> Tensor:
    """``[N H W, C]`` view/copy of the map: one row per cell, so a gather reads C contiguous values."""
    return input.permute(0, 2, 3, 1).contiguous().view(-1, input.shape[1])


def size_groups(sizes: Tensor, cost_per_unit: int, octaves: int) -> list[Tensor]:
    """RoI indices grouped by size and cut into chunks of about ``BUDGET`` padded elements.

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
        chunks.extend(torch.split(group, max(1, BUDGET // max(padded, 1))))
    return chunks


def in_roi_order(pieces: list[Tensor], chunks: list[Tensor], num_rois: int) -> Tensor:
    """Per-chunk bin results ``[k * bins, C]`` → ``[K * bins, C]`` in RoI order."""
    bins = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    order = torch.cat(chunks)
    if torch.equal(order, torch.arange(num_rois, device=order.device)):
        return bins
    return bins.view(num_rois, -1, bins.shape[-1])[torch.argsort(order)].flatten(0, 1)


def outer(rows: Tensor, cols: Tensor, op) -> Tensor:
    """``op(rows[k, out_h, a], cols[k, out_w, b])`` for every bin and pair, flattened in (k, out_h, out_w, a, b)
    order: each bin's bag, contiguous. Both sides are first spread to ``[k, P, a * b]`` (small), since one 4-D
    broadcast is several times faster than a 5-D one with short inner dimensions."""
    k, a, b = len(rows), rows.shape[2], cols.shape[2]
    rows = rows[:, :, :, None].expand(-1, -1, a, b).reshape(k, rows.shape[1], a * b)
    cols = cols[:, :, None, :].expand(-1, -1, a, b).reshape(k, cols.shape[1], a * b)
    return op(rows[:, :, None, :], cols[:, None, :, :]).flatten()


def _strip_padding(cells: Tensor, real: tuple[Tensor, Tensor], bag_size: Tensor, weights: Tensor | None):
    """Drop the padded entries of :func:`outer` bags (``real`` holds the row and column masks), so the gather,
    the expensive part (C values per entry), reads real cells only; and the bags' offsets."""
    if len(cells) > bag_size.sum():
        keep = outer(*real, torch.logical_and).nonzero().squeeze(1)
        cells, weights = cells[keep], None if weights is None else weights[keep]
    return cells, torch.cumsum(bag_size, 0) - bag_size, weights


def sum_bags(
    table: Tensor,
    cells: Tensor,
    real: tuple[Tensor, Tensor],
    bag_size: Tensor,
    weights: Tensor,
    backward: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Weighted sum of each bin's bag of ``table`` rows → ``[bins, C]`` (``cells``, ``weights`` from :func:`outer`).

    With ``backward = (grad of the bins [bins, C], grad of the table)``, instead adds each entry's share of its
    bin's gradient, ``weight × grad``, to the table's gradient (and returns it).
    """
    cells, offsets, weights = _strip_padding(cells, real, bag_size, weights)
    if backward is None:
        return F.embedding_bag(cells, table, offsets, mode="sum", per_sample_weights=weights)
    grad_bins, grad_table = backward
    entry_bin = torch.repeat_interleave(torch.arange(len(bag_size), device=cells.device), bag_size)
    return grad_table.index_add_(0, cells, grad_bins.index_select(0, entry_bin) * weights[:, None])


def max_bags(table: Tensor, cells: Tensor, real: tuple[Tensor, Tensor], bag_size: Tensor) -> tuple[Tensor, Tensor]:
    """Maximum of each bin's bag of ``table`` rows → ``([bins, C], the table row of each maximum [bins, C])``;
    of equal values the first in the bag (row-major, as torchvision's argmax)."""
    cells, offsets, _ = _strip_padding(cells, real, bag_size, None)
    values, _, _, argmax = torch.embedding_bag(table, cells, offsets, False, 2)  # mode 2: max
    return values, argmax


def gradient_bins(grad: Tensor, chunk: Tensor) -> Tensor:
    """The output gradient ``[K, C, out_h, out_w]`` of the RoIs ``chunk`` as bins ``[k * out_h * out_w, C]``."""
    return grad.index_select(0, chunk).permute(0, 2, 3, 1).flatten(0, 2)


def table_to_input(grad_table: Tensor, input: Tensor) -> Tensor:
    """The gradient of :func:`channels_last_table` ``[N H W, C]`` back in ``input``'s ``[N, C, H, W]`` layout."""
    n, c, h, w = input.shape
    return grad_table.view(n, h, w, c).permute(0, 3, 1, 2).contiguous()


def register_backward(op, backward_op) -> None:
    """Autograd for a registered RoI op ``op(input, rois, *arguments)``: the input's gradient is
    ``backward_op(grad, input, rois, *arguments)``; the boxes and the arguments get none, as in torchvision."""

    def setup_context(ctx, inputs, output) -> None:
        input, rois, *ctx.arguments = inputs
        ctx.save_for_backward(input, rois)

    def backward(ctx, grad: Tensor):
        input, rois = ctx.saved_tensors
        return backward_op(grad.contiguous(), input, rois, *ctx.arguments), None, *(None for _ in ctx.arguments)

    op.register_autograd(backward, setup_context=setup_context)


def empty_output(input: Tensor, output_size: tuple[int, int]) -> Tensor:
    return input.new_zeros((0, input.shape[1], *output_size))


def bins_to_output(bins: Tensor, num_rois: int, output_size: tuple[int, int]) -> Tensor:
    """``[K * out_h * out_w, C]`` bag results → contiguous ``[K, C, out_h, out_w]``."""
    return bins.view(num_rois, *output_size, -1).permute(0, 3, 1, 2).contiguous()
