"""Non-maximum suppression: drop-in ``nms`` and ``batched_nms`` (torchvision.ops), an IoU-matrix form, Soft-NMS.

Greedy NMS visits the boxes by decreasing score and keeps a box unless a box kept before it overlaps it with
IoU strictly greater than ``iou_threshold`` (torchvision's convention). Equal scores are visited in index order:
torchvision's CPU kernel sorts with a stable descending sort, so ties come out in its order too.

No Python loop over boxes. Number the boxes in visiting order and let S[i, j] be true when i < j and
IoU(i, j) > t. Greedy NMS keeps

    k_j = not OR_i (k_i and S[i, j]),

a triangular system: k_j depends only on earlier entries, so it has exactly one solution. Iterating
k <- not (Sᵀ k) from k = all true makes box j right one round after every box it depends on is right, so the
iteration settles on that solution after at most (the longest chain of overlapping boxes) + 1 rounds, and a
round that changes nothing proves it has.

``nms_matrix`` iterates on the whole N x N boolean S: a few rounds of large tensor ops, the form suited to GPUs.
``nms`` avoids the N² pairs. With t >= 0 only boxes that intersect can suppress each other, and sorting finds
those candidates: boxes get integer keys (category, row of a grid of cells at least as tall as the tallest
box, rank of x1), so the boxes that can intersect a box lie in at most a few key windows, found by binary search
(see ``_Windows``). The visiting order is cut into blocks: a block's boxes are first tested against the boxes kept
by earlier blocks (final decisions: nothing later changes them), and the survivors are resolved among themselves
by the fixed point on their sparse suppression edges. Memory stays O(N + block² + chunk). A few hundred boxes,
a negative threshold (disjoint boxes suppress each other) or infinite coordinates take the matrix form instead.

The IoU is computed with the operations of torchvision's kernel (``inter / (area_i + area_j - inter)`` in the
boxes' dtype) and compared with the threshold rounded down to that dtype, which is what comparing with the double
threshold amounts to, so IoUs at the threshold are decided as torchvision decides them.

Soft-NMS (Bodla et al., 2017, Algorithm 1): repeatedly take the remaining box M with the highest current score,
keep it, and decay the score of every other remaining box b_i:

    linear:   s_i <- s_i (1 - IoU(M, b_i))  where IoU(M, b_i) > N_t  (strictly, as in ``nms``; the paper has >=)
    gaussian: s_i <- s_i exp(-IoU(M, b_i)² / σ)

A box whose score is below ``score_threshold`` (initially or after a decay) is dropped, as in the authors' code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from zoo.ops._graph import check_all, check_supported_dtype, is_fx_proxy, is_tracing
from zoo.ops.boxes import _inter_union, _upcast, box_iou, check_boxes

__all__ = ["SOFT_NMS_METHODS", "nms", "batched_nms", "nms_matrix", "soft_nms"]

SOFT_NMS_METHODS = ("linear", "gaussian")

# Boxes per block of ``nms``; candidate pairs tested at a time (bounds the temporaries); most grid rows;
# up to how many boxes ``nms`` uses the whole suppression matrix.
_BLOCK = 2048
_DENSE_UP_TO = 384
_CHUNK = 1 << 20
_GRID_ROWS = 1024


def _check_threshold(value: float, name: str) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    return float(value)


def _check_scores(scores: Tensor, count: int, name: str = "scores") -> None:
    """Type and shape (which a tracer sees); NaN scores are refused by the registered op, on the values."""
    if not isinstance(scores, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape [{count}], got {type(scores).__name__}")
    check_supported_dtype(scores, name)
    if scores.shape != (count,):
        raise ValueError(f"{name}: expected shape [{count}] (one per box), got {list(scores.shape)}")
    if scores.dtype == torch.bool:
        raise TypeError(f"{name}: expected real numbers, got {scores.dtype}")


def _check_no_nan(scores: Tensor, name: str = "scores") -> None:
    if scores.is_floating_point():
        check_all(~scores.isnan(), lambda: f"{name}: expected no NaN, got {int(scores.isnan().sum())} NaN values",
                  f"{name}: expected no NaN")  # fmt: skip


def _check_inputs(boxes: Tensor, scores: Tensor, iou_threshold: float) -> tuple[Tensor, float]:
    """What can be checked without reading the values; the registered ops check the values."""
    if isinstance(boxes, Tensor):
        check_supported_dtype(boxes, "boxes")
    if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4:
        check_boxes(boxes)  # raises the usual TypeError / ValueError
    _check_scores(scores, boxes.shape[0])
    return boxes, _check_threshold(iou_threshold, "iou_threshold")


def _threshold_below(threshold: float, dtype: torch.dtype) -> Tensor:
    """The largest ``dtype`` value not above ``threshold``: for x of that dtype, ``x > it`` iff ``x > threshold``."""
    value = torch.tensor(threshold, dtype=dtype)
    if value.item() > threshold:
        value = torch.nextafter(value, torch.tensor(-math.inf, dtype=dtype))
    return value


def _suppresses(coords: tuple[Tensor, ...], first: Tensor, second: Tensor, threshold: Tensor) -> Tensor:
    """IoU(box first[k], box second[k]) > threshold, for boxes given as four coordinate vectors.

    0 / 0 (two coinciding empty boxes) is NaN, which suppresses nothing, as in torchvision.
    """
    corners1 = tuple(c.index_select(0, first) for c in coords)
    corners2 = tuple(c.index_select(0, second) for c in coords)
    inter, union = _inter_union(corners1, corners2)
    return torch.gt(inter.div_(union), threshold)


def _fixed_point(count: int, suppressed_by: Callable[[Tensor], Tensor], device: torch.device) -> Tensor:
    """The greedy keep mask: iterate k <- not suppressed_by(k) from all true (see the module docstring)."""
    keep = torch.ones(count, dtype=torch.bool, device=device)
    while True:  # at most (the longest chain of overlapping boxes) + 1 rounds
        updated = ~suppressed_by(keep)
        if torch.equal(updated, keep):
            return keep
        keep = updated


def _step_down(values: Tensor) -> Tensor:
    """One representable step towards -inf: absorbs the rounding of a subtraction, so a window only grows."""
    return torch.nextafter(values, values.new_tensor(-math.inf))


def _expand(starts: Tensor, counts: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(starts[w] + i, w)`` for every window w and i < counts[w], in chunks of about ``_CHUNK`` pairs."""
    ends = counts.cumsum(0)
    total = int(ends[-1]) if len(ends) else 0
    if not total:
        return
    begins = ends - counts  # the number of each window's first pair
    shift = starts - begins  # from a pair's number to its row
    marks = torch.arange(_CHUNK, max(total, _CHUNK), _CHUNK, device=counts.device)
    bounds = [0, *torch.searchsorted(ends, marks, side="right").tolist(), len(counts)]
    for first, last in zip(bounds[:-1], bounds[1:], strict=True):  # a loop over chunks, to bound memory
        if first == last:
            continue
        offset, stop = int(begins[first]), int(ends[last - 1])
        # The window of pair p is the last one that begins at or before p (empty ones included). Counting
        # beginnings beats repeat_interleave, which wakes every CPU thread even for a handful of elements.
        local = begins[first:last] - offset
        window = torch.zeros(stop - offset + 1, dtype=torch.long, device=counts.device)
        window = window.index_add_(0, local, torch.ones_like(local))[:-1].cumsum(0).add_(first - 1)
        # index_select: advanced indexing with a long index runs several times slower on CPU.
        pair = torch.arange(offset, stop, device=counts.device)
        yield shift.index_select(0, window).add_(pair), window


class _Windows:
    """Integer keys that gather the boxes able to intersect a box into a few key windows.

    Boxes a and b of one category intersect (positive area) only if x1_b - W < x1_a < x2_b and
    y1_b - H < y1_a < y2_b, W and H being the largest width and height. A box's key is (category, grid row of y1,
    rank of x1) in one int64, with grid rows at least H tall, so the boxes that can intersect b have keys in one
    window per grid row from that of y1_b - H to that of y2_b (3 rows, 4 with rounding), which binary searches
    find in any key-sorted set of boxes. A few very large boxes make the windows wide, never wrong.
    """

    def __init__(self, coords: tuple[Tensor, ...], groups: Tensor | None) -> None:
        x1, y1, x2, y2 = coords
        count = len(x1)
        order = x1.argsort(stable=True)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(count, device=x1.device)
        sorted_x1 = x1[order]
        self.x_lo = torch.searchsorted(sorted_x1, _step_down(x1 - (x2 - x1).max()), side="left")
        self.x_hi = torch.searchsorted(sorted_x1, x2, side="left")

        top, height = y1.min(), (y2 - y1).max()
        row_height = max(float(height), float(y1.max() - top) / _GRID_ROWS) or 1.0
        row = ((y1 - top) / row_height).floor().long()
        self.rows = int(row.max()) + 1
        self.row_lo = ((_step_down(y1 - height) - top) / row_height).floor().long().clamp(min=0)
        self.row_hi = ((y2 - top) / row_height).floor().long().clamp(max=self.rows - 1)
        category = torch.zeros_like(rank) if groups is None else torch.unique(groups, return_inverse=True)[1]
        self.category = category * self.rows
        self.stride = count + 1
        self.key = (self.category + row) * self.stride + rank

    def pairs(self, sorted_keys: Tensor, queries: Tensor, before: Tensor | None = None):
        """Yield chunks ``(rows, which)`` over a set of boxes whose keys are ``sorted_keys`` (ascending): its box
        at position ``rows[k]`` may intersect box ``queries[which[k]]``; no other of its boxes can intersect them.

        With ``before``, only positions below ``before[which]`` (to list each pair within one set once).
        """
        row_lo, row_hi = self.row_lo[queries], self.row_hi[queries]
        spread = int((row_hi - row_lo).max()) + 1 if len(queries) else 0
        # One window per query and grid row, flattened as [query, row offset].
        row = row_lo[:, None] + torch.arange(spread, device=queries.device)
        line = (self.category[queries, None] + row) * self.stride
        lo = torch.searchsorted(sorted_keys, (line + self.x_lo[queries, None]).flatten())
        hi = torch.searchsorted(sorted_keys, (line + self.x_hi[queries, None]).flatten())
        if before is not None:
            hi = torch.minimum(hi, before[:, None].expand(-1, spread).flatten())
        counts = torch.where((row <= row_hi[:, None]).flatten(), hi - lo, 0).clamp_(min=0)
        for rows, window in _expand(lo, counts):
            yield rows, window.div_(spread, rounding_mode="floor")


def _edges_suppress(sources: Tensor, targets: Tensor, count: int) -> Callable[[Tensor], Tensor]:
    """``keep -> suppressed`` for the edges "box sources[k], if kept, suppresses box targets[k]"."""

    def suppressed_by(keep: Tensor) -> Tensor:
        suppressed = torch.zeros(count, dtype=torch.bool, device=keep.device)
        suppressed[targets[keep[sources]]] = True
        return suppressed

    return suppressed_by


def _resolve_block(coords: tuple[Tensor, ...], windows: _Windows, candidates: Tensor, threshold: Tensor) -> Tensor:
    """Greedy NMS among ``candidates`` (visiting positions, sorted by key) by the fixed point on sparse edges."""
    position = torch.arange(len(candidates), device=candidates.device)
    sources, targets = [position[:0]], [position[:0]]
    for rows, cols in windows.pairs(windows.key[candidates], candidates, before=position):
        first, second = candidates.index_select(0, rows), candidates.index_select(0, cols)
        hit = _suppresses(coords, first, second, threshold).nonzero().squeeze(1)
        rows, cols = rows.index_select(0, hit), cols.index_select(0, hit)
        # Of the two, the box visited first is the one that suppresses.
        earlier = first.index_select(0, hit) < second.index_select(0, hit)
        sources.append(torch.where(earlier, rows, cols))
        targets.append(torch.where(earlier, cols, rows))
    suppressed_by = _edges_suppress(torch.cat(sources), torch.cat(targets), len(candidates))
    return candidates[_fixed_point(len(candidates), suppressed_by, candidates.device)]


def _greedy_sparse(boxes: Tensor, threshold: Tensor, groups: Tensor | None) -> Tensor:
    """Positions (ascending) kept by greedy NMS of ``boxes`` in visiting order; only pairs of one group count.

    Block by block: drop the block's boxes that an already kept box suppresses (a final decision), then resolve
    the rest among themselves. The loop runs over N / _BLOCK blocks, each needing what earlier ones kept.
    """
    coords = boxes.T.contiguous().unbind(0)
    windows = _Windows(coords, groups)
    kept = boxes.new_empty(0, dtype=torch.long)  # sorted by key
    for start in range(0, len(boxes), _BLOCK):
        block = torch.arange(start, min(start + _BLOCK, len(boxes)), device=boxes.device)
        candidates = block
        if len(kept):
            suppressed = torch.zeros(len(block), dtype=torch.bool, device=boxes.device)
            for rows, which in windows.pairs(windows.key[kept], block):
                first, second = kept.index_select(0, rows), which.add(start)
                suppressed[which[_suppresses(coords, first, second, threshold)]] = True
            candidates = block[~suppressed]
        candidates = candidates[windows.key[candidates].argsort()]
        kept = torch.cat([kept, _resolve_block(coords, windows, candidates, threshold)])
        kept = kept[windows.key[kept].argsort()]
    return kept.sort().values


def _greedy_dense(boxes: Tensor, threshold: Tensor, groups: Tensor | None) -> Tensor:
    """Positions kept by greedy NMS of ``boxes`` in visiting order, from the whole boolean suppression matrix."""
    count = len(boxes)
    coords = boxes.T.contiguous()
    position = torch.arange(count, device=boxes.device)
    step = max(1, _CHUNK // max(1, count))
    rows = [torch.zeros(0, count, dtype=torch.bool, device=boxes.device)]
    for start in range(0, count, step):  # a loop over row chunks, to bound the float temporaries
        chunk = position[start : start + step, None]
        inter, union = _inter_union(coords[:, chunk].unbind(0), coords[:, None, :].unbind(0))
        suppresses = torch.gt(inter.div_(union), threshold) & (position > chunk)
        if groups is not None:
            suppresses &= groups[chunk] == groups
        rows.append(suppresses)
    matrix = torch.cat(rows)
    keep = _fixed_point(count, lambda keep: matrix[keep].any(dim=0), boxes.device)
    return keep.nonzero().squeeze(1)


def _greedy(boxes: Tensor, threshold: Tensor, groups: Tensor | None) -> Tensor:
    if not len(boxes):
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    if threshold < 0 or len(boxes) <= _DENSE_UP_TO or not boxes.isfinite().all():
        # Below zero even disjoint boxes suppress each other, which the windows would miss; infinite
        # coordinates have no grid row; and for a few boxes the whole matrix costs less than the windows.
        return _greedy_dense(boxes, threshold, groups)
    return _greedy_sparse(boxes, threshold, groups)


def _visiting_order(scores: Tensor) -> Tensor:
    return torch.sort(scores, descending=True, stable=True).indices


def _torchvision_sorts_per_class(boxes: Tensor) -> bool:
    """Whether torchvision's batched_nms runs NMS class by class (0.29: over 4000 coordinates on CPU, 100k on GPU)."""
    return boxes.numel() > (4000 if boxes.device.type == "cpu" else 100_000)


# The registered operators: what torch.compile, torch.export and torch.fx record as one node each (as they record
# torchvision's C++ ops). Their bodies are the eager code above, run on the values, so the value checks run there.
def _keep(boxes: Tensor, scores: Tensor, iou_threshold: float, greedy: Callable[..., Tensor]) -> Tensor:
    """The value checks, then ``greedy`` NMS over the boxes by decreasing score: the kept indices."""
    boxes = _upcast(check_boxes(boxes))
    _check_no_nan(scores)
    order = _visiting_order(scores)
    return order[greedy(boxes[order], _threshold_below(iou_threshold, boxes.dtype), None)]


@torch.library.custom_op("zoo::nms", mutates_args=())
def _nms_op(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    return _keep(boxes, scores, iou_threshold, _greedy)


@torch.library.custom_op("zoo::batched_nms", mutates_args=())
def _batched_nms_op(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    boxes = _upcast(check_boxes(boxes))
    _check_no_nan(scores)
    _check_no_nan(idxs, "idxs")
    order = _visiting_order(scores)
    threshold = _threshold_below(iou_threshold, boxes.dtype)
    kept = order[_greedy(boxes[order], threshold, idxs[order])]
    kept = kept.sort().values
    stable = not _torchvision_sorts_per_class(boxes)
    return kept[torch.sort(scores[kept], descending=True, stable=stable).indices]


@torch.library.custom_op("zoo::nms_matrix", mutates_args=())
def _nms_matrix_op(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    return _keep(boxes, scores, iou_threshold, _greedy_dense)


@_nms_op.register_fake
def _(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    return boxes.new_empty((torch.library.get_ctx().new_dynamic_size(),), dtype=torch.long)


@_nms_matrix_op.register_fake
def _(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    return boxes.new_empty((torch.library.get_ctx().new_dynamic_size(),), dtype=torch.long)


@_batched_nms_op.register_fake
def _(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    return boxes.new_empty((torch.library.get_ctx().new_dynamic_size(),), dtype=torch.long)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS of ``[N, 4]`` xyxy boxes, as ``torchvision.ops.nms``.

    Returns the int64 indices of the kept boxes by decreasing score (equal scores by index). A box is
    suppressed by a kept higher-scored box whose IoU with it is strictly greater than ``iou_threshold``.
    Runs as the registered operator ``torch.ops.zoo.nms``, so it compiles (fullgraph) and exports.
    """
    if is_fx_proxy(boxes, scores):
        return torch.ops.zoo.nms(boxes, scores, iou_threshold)
    boxes, iou_threshold = _check_inputs(boxes, scores, iou_threshold)
    return torch.ops.zoo.nms(boxes, scores, iou_threshold)


def nms_matrix(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """The same result as ``nms``, from the whole boolean suppression matrix (N² bytes) and its fixed point.

    No loop over boxes or blocks, only a few rounds of ``[N, N]`` tensor ops: the form suited to GPUs.
    """
    boxes, iou_threshold = _check_inputs(boxes, scores, iou_threshold)
    return torch.ops.zoo.nms_matrix(boxes, scores, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category ``idxs[i]``, as ``torchvision.ops.batched_nms``; kept indices by decreasing score.

    Boxes of different categories never suppress each other. Kept boxes with equal scores come in torchvision's
    order: by index, except where torchvision runs NMS class by class (more than 1000 boxes on CPU) and ends with
    an unstable sort of the kept scores; the same sort call is made here. Empty boxes of any shape give an empty
    result, as torchvision's. Runs as the registered operator ``torch.ops.zoo.batched_nms``.
    """
    if is_fx_proxy(boxes, scores, idxs):
        return torch.ops.zoo.batched_nms(boxes, scores, idxs, iou_threshold)
    if isinstance(boxes, Tensor) and not is_tracing() and boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    boxes, iou_threshold = _check_inputs(boxes, scores, iou_threshold)
    _check_scores(idxs, boxes.shape[0], "idxs")
    return torch.ops.zoo.batched_nms(boxes, scores, idxs, iou_threshold)


def soft_nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    score_threshold: float = 0.001,
    method: str = "linear",
) -> tuple[Tensor, Tensor]:
    """Soft-NMS (Bodla et al., 2017) of ``[N, 4]`` xyxy boxes.

    Returns ``(keep, decayed)``: int64 indices of the kept boxes in the order they were picked (decreasing decayed
    score; equal scores by index) and each one's decayed score when picked. ``iou_threshold`` (N_t) is used by
    the linear method only, ``sigma`` by the Gaussian one.
    """
    if method not in SOFT_NMS_METHODS:
        raise ValueError(f"method: expected one of {SOFT_NMS_METHODS}, got {method!r}")
    boxes, iou_threshold = _check_inputs(boxes, scores, iou_threshold)
    sigma = _check_threshold(sigma, "sigma")
    if method == "gaussian" and not sigma > 0:
        raise ValueError(f"sigma: expected a value > 0, got {sigma}")
    score_threshold = _check_threshold(score_threshold, "score_threshold")
    return torch.ops.zoo.soft_nms(boxes, scores, iou_threshold, sigma, score_threshold, method)


@torch.library.custom_op("zoo::soft_nms", mutates_args=())
def _soft_nms_op(
    boxes: Tensor, scores: Tensor, iou_threshold: float, sigma: float, score_threshold: float, method: str
) -> tuple[Tensor, Tensor]:
    boxes = _upcast(check_boxes(boxes))
    _check_no_nan(scores)
    current = scores.to(torch.promote_types(scores.dtype, boxes.dtype), copy=True)
    threshold = _threshold_below(iou_threshold, boxes.dtype)
    remaining = (current >= score_threshold).nonzero().squeeze(1)
    keep, decayed = [], []
    # One round per kept box: each pick depends on the scores decayed by every earlier pick. Each round is
    # vectorised over the remaining boxes, which shrink as boxes are picked or drop below the threshold.
    while len(remaining):
        best = int(current[remaining].argmax())  # the first maximum: equal scores by index
        picked = remaining[best]
        keep.append(picked)
        decayed.append(current[picked])
        remaining = torch.cat([remaining[:best], remaining[best + 1 :]])
        iou = box_iou(boxes[picked][None], boxes[remaining])[0]
        if method == "linear":
            weight = torch.where(iou > threshold, 1 - iou, 1.0)
        else:
            weight = torch.exp(-(iou**2) / sigma)
        current[remaining] = current[remaining] * weight
        remaining = remaining[current[remaining] >= score_threshold]
    if not keep:
        return torch.empty(0, dtype=torch.long, device=boxes.device), current[:0]
    return torch.stack(keep), torch.stack(decayed)


@_soft_nms_op.register_fake
def _(boxes, scores, iou_threshold, sigma, score_threshold, method):
    kept = torch.library.get_ctx().new_dynamic_size()
    dtype = torch.promote_types(scores.dtype, _upcast(boxes).dtype)
    return boxes.new_empty((kept,), dtype=torch.long), scores.new_empty((kept,), dtype=dtype)
