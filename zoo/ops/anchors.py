"""Anchor boxes: the Faster R-CNN / FPN grid generator and YOLO's k-means anchor clustering.

Grid anchors (Ren et al., 2015, "Faster R-CNN"; Lin et al., 2017, "Feature Pyramid Networks"), drop-in for
``torchvision.models.detection.anchor_utils.AnchorGenerator``. For a feature level with sizes ``s`` and aspect
ratios ``r = height / width`` the zero-centred cell anchors are

    w = s / sqrt(r),   h = s * sqrt(r),   cell anchor = round((-w, -h, w, h) / 2)

(rounded half to even, as ``torch.round`` does), ordered ratio-major: for each ratio, for each size. A level of
``H x W`` cells on an image (the padded batch) of ``H_img x W_img`` pixels has integer strides
``(H_img // H, W_img // W)``; cell ``(i, j)`` holds the cell anchors shifted by ``(j * stride_x, i * stride_y)``.
The anchors of one image are ordered level by level, row by row, column by column, cell anchor by cell anchor.

Anchor clustering (Redmon & Farhadi, 2017, "YOLO9000: Better, Faster, Stronger", section "Dimension Clusters"):
k-means on the widths and heights of the training boxes with the distance

    d(box, centroid) = 1 - IoU(box, centroid),
    IoU of co-centred boxes = min(w1, w2) min(h1, h2) / (w1 h1 + w2 h2 - min(w1, w2) min(h1, h2))

so that the clusters do not favour large boxes as the Euclidean distance would. The paper reports the mean,
over the boxes, of the best IoU with any anchor ("Avg IoU"); :func:`anchor_fitness` computes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from zoo.ops.boxes import box_iou

__all__ = ["AnchorGenerator", "wh_iou", "anchor_fitness", "kmeans_anchors"]

KMEANS_INITS = ("kmeans++", "random")


def _as_levels(values: Sequence, name: str) -> tuple[tuple[float, ...], ...]:
    """A tuple per level; a flat sequence means one value per level (torchvision's shorthand for ``sizes``)."""
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) == 0:
        raise ValueError(f"{name}: expected a non-empty sequence of per-level tuples, got {values!r}")
    levels = tuple(tuple(v) if isinstance(v, Sequence) else (v,) for v in values)
    for level in levels:
        if len(level) == 0 or not all(isinstance(v, (int, float)) and v > 0 for v in level):
            raise ValueError(f"{name}: expected non-empty tuples of positive numbers per level, got {values!r}")
    return levels


class AnchorGenerator(nn.Module):
    """Anchors for a list of feature maps, identical to torchvision's ``AnchorGenerator``.

    Args:
        sizes: per feature level, the anchor sizes (square roots of the areas) in pixels. A flat tuple
            ``(32, 64, ...)`` means one size per level, as in torchvision.
        aspect_ratios: per level, the ratios ``height / width``. A flat tuple is used for every level.

    ``forward(images, feature_maps)`` accepts torchvision's ``ImageList`` (or any object with ``.tensors`` and
    ``.image_sizes``) or a batch tensor ``[B, C, H, W]``, and a list (or ordered dict) of feature maps
    ``[B, C_l, H_l, W_l]``, finest first; it returns one ``[sum_l H_l W_l A_l, 4]`` xyxy tensor
    per image, in the dtype and on the device of the feature maps. As in torchvision, every image of the batch
    gets the same anchors, computed from the padded batch size, and the cell anchors are not part of the
    ``state_dict``.
    """

    def __init__(
        self,
        sizes: Sequence = ((32,), (64,), (128,), (256,), (512,)),
        aspect_ratios: Sequence = ((0.5, 1.0, 2.0),) * 5,
    ) -> None:
        super().__init__()
        self.sizes = _as_levels(sizes, "sizes")
        ratios = _as_levels(aspect_ratios, "aspect_ratios")
        if not isinstance(aspect_ratios[0], Sequence):
            ratios = (tuple(aspect_ratios),) * len(self.sizes)
        if len(ratios) != len(self.sizes):
            raise ValueError(
                f"sizes and aspect_ratios: expected one entry per feature level in each, "
                f"got {len(self.sizes)} sizes and {len(ratios)} aspect-ratio tuples"
            )
        self.aspect_ratios = ratios
        self.cell_anchors = [self.generate_anchors(s, r) for s, r in zip(self.sizes, self.aspect_ratios, strict=True)]

    @staticmethod
    def generate_anchors(
        scales: Sequence[float],
        aspect_ratios: Sequence[float],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """Zero-centred cell anchors ``[len(aspect_ratios) * len(scales), 4]``, ratio-major."""
        scales = torch.as_tensor(scales, dtype=dtype, device=device)
        ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
        height_factor = ratios.sqrt()
        # 1 / sqrt(r) rather than sqrt(1 / r): the same float32 rounding as torchvision, so the same anchors.
        width_factor = 1 / height_factor
        widths = (width_factor[:, None] * scales[None, :]).flatten()
        heights = (height_factor[:, None] * scales[None, :]).flatten()
        return (torch.stack([-widths, -heights, widths, heights], dim=1) / 2).round()

    def num_anchors_per_location(self) -> list[int]:
        """Anchors per cell ``A_l = len(sizes[l]) * len(aspect_ratios[l])`` for every level."""
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios, strict=True)]

    def grid_anchors(
        self,
        grid_sizes: Sequence[Sequence[int]],
        strides: Sequence[Sequence[int | Tensor]],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> list[Tensor]:
        """Anchors ``[H_l * W_l * A_l, 4]`` of every level, given its grid ``(H, W)`` and stride ``(sy, sx)``."""
        if not len(grid_sizes) == len(strides) == len(self.cell_anchors):
            raise ValueError(
                f"expected one grid size and one stride per feature level ({len(self.cell_anchors)} levels), "
                f"got {len(grid_sizes)} grid sizes and {len(strides)} strides"
            )
        anchors = []
        # A loop over the handful of pyramid levels; each level is vectorised.
        for (height, width), (stride_y, stride_x), cell in zip(grid_sizes, strides, self.cell_anchors, strict=True):
            # Integer shifts, added to the cast cell anchors: the same type promotion (and sums) as torchvision.
            shift_x = torch.arange(int(width), dtype=torch.int64, device=device) * int(stride_x)
            shift_y = torch.arange(int(height), dtype=torch.int64, device=device) * int(stride_y)
            grid_y, grid_x = torch.meshgrid(shift_y, shift_x, indexing="ij")
            shifts = torch.stack((grid_x, grid_y, grid_x, grid_y), dim=-1).reshape(-1, 1, 4)
            anchors.append((shifts + cell.to(dtype=dtype, device=device)[None]).reshape(-1, 4))
        return anchors

    def forward(self, images: Any, feature_maps: Sequence[Tensor] | Mapping[str, Tensor]) -> list[Tensor]:
        batch_size, image_size = _batch_geometry(images)
        if isinstance(feature_maps, Mapping):  # named feature maps (an FPN's ordered dict), in their order
            feature_maps = list(feature_maps.values())
        if isinstance(feature_maps, Tensor) or len(feature_maps) != len(self.cell_anchors):
            got = "a single tensor" if isinstance(feature_maps, Tensor) else f"{len(feature_maps)}"
            raise ValueError(f"feature_maps: expected a list of {len(self.cell_anchors)} feature maps, got {got}")
        for index, feature_map in enumerate(feature_maps):
            if not isinstance(feature_map, Tensor) or feature_map.dim() < 2:
                raise ValueError(f"feature_maps[{index}]: expected a tensor [..., H, W]")
        grid_sizes = [tuple(feature_map.shape[-2:]) for feature_map in feature_maps]
        strides = []
        for height, width in grid_sizes:
            if not (0 < height <= image_size[0] and 0 < width <= image_size[1]):
                raise ValueError(
                    f"feature map of size {(height, width)} does not fit the image size {tuple(image_size)}: "
                    "expected a non-empty grid no larger than the image"
                )
            strides.append((image_size[0] // height, image_size[1] // width))
        reference = feature_maps[0]
        anchors = torch.cat(self.grid_anchors(grid_sizes, strides, reference.dtype, reference.device))
        # torchvision gives each image its own tensor; they are equal, so a clone per image keeps them independent.
        return [anchors] + [anchors.clone() for _ in range(batch_size - 1)]

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, aspect_ratios={self.aspect_ratios}"


def _batch_geometry(images: Any) -> tuple[int, tuple[int, int]]:
    """``(number of images, padded (H, W))`` from an ImageList-like object or a ``[B, C, H, W]`` tensor."""
    if isinstance(images, Tensor):
        if images.dim() != 4:
            raise ValueError(f"images: expected a batch tensor [B, C, H, W], got shape {list(images.shape)}")
        return images.shape[0], tuple(images.shape[-2:])
    tensors, image_sizes = getattr(images, "tensors", None), getattr(images, "image_sizes", None)
    if not isinstance(tensors, Tensor) or tensors.dim() < 2 or image_sizes is None:
        raise TypeError(
            "images: expected an ImageList (an object with .tensors [B, C, H, W] and .image_sizes) or a "
            f"[B, C, H, W] tensor, got {type(images).__name__}"
        )
    return len(image_sizes), tuple(tensors.shape[-2:])


def _check_wh(wh: Tensor, name: str) -> Tensor:
    if not isinstance(wh, Tensor):
        raise TypeError(f"{name}: expected a tensor [N, 2] of widths and heights, got {type(wh).__name__}")
    if wh.dim() != 2 or wh.shape[1] != 2:
        raise ValueError(f"{name}: expected shape [N, 2] (width, height), got {list(wh.shape)}")
    if not wh.is_floating_point():
        wh = wh.float()
    if not (wh >= 0).all() or not wh.isfinite().all():
        raise ValueError(f"{name}: expected finite, non-negative widths and heights")
    return wh


def wh_iou(wh1: Tensor, wh2: Tensor) -> Tensor:
    """Pairwise IoU ``[N, M]`` of boxes given by width and height only, placed on a common centre."""
    wh1, wh2 = _check_wh(wh1, "wh1"), _check_wh(wh2, "wh2")
    # Co-centred boxes are boxes centred on the origin; box_iou then gives min(w) min(h) / union exactly.
    return box_iou(torch.cat([-wh1 / 2, wh1 / 2], dim=1), torch.cat([-wh2 / 2, wh2 / 2], dim=1))


def anchor_fitness(wh: Tensor, anchors: Tensor) -> Tensor:
    """YOLO9000's "Avg IoU": the mean over the boxes of their best co-centred IoU with any anchor (a scalar)."""
    iou = wh_iou(wh, anchors)
    if iou.numel() == 0:
        return iou.new_zeros(())
    return iou.max(dim=1).values.mean()


def _init_centroids(wh: Tensor, k: int, init: str, generator: torch.Generator) -> Tensor:
    if init == "random":
        return wh[torch.randperm(len(wh), generator=generator)[:k]].clone()
    # k-means++ (Arthur & Vassilvitskii, 2007) with the 1 - IoU distance: each new centroid is a box drawn with
    # probability proportional to its squared distance from the nearest centroid chosen so far.
    chosen = [int(torch.randint(len(wh), (1,), generator=generator))]
    distance = 1 - wh_iou(wh, wh[chosen])[:, 0]
    for _ in range(k - 1):  # k is small (9 for YOLOv3); each step is vectorised over the boxes
        weights = distance.clamp(min=0).pow(2)
        if weights.sum() <= 0:  # every box coincides with a centroid: any box will do
            weights = torch.ones_like(weights)
        chosen.append(int(torch.multinomial(weights, 1, generator=generator)))
        distance = torch.minimum(distance, 1 - wh_iou(wh, wh[chosen[-1:]])[:, 0])
    return wh[chosen].clone()


def _lloyd(points: Tensor, centroids: Tensor, iters: int) -> Tensor:
    """Lloyd iterations from ``centroids`` until the assignment no longer changes (or ``iters`` rounds)."""
    k = len(centroids)
    assignment = None
    for _ in range(iters):  # Lloyd iterations are sequential by nature
        iou = wh_iou(points, centroids)
        new_assignment = iou.argmax(dim=1)
        if assignment is not None and torch.equal(new_assignment, assignment):
            break
        assignment = new_assignment
        counts = torch.bincount(assignment, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, points)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
        empty = (counts == 0).nonzero().flatten()
        if len(empty):
            farthest = (1 - iou.max(dim=1).values).topk(len(empty)).indices
            centroids[empty] = points[farthest]
    return centroids


def _check_count(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def kmeans_anchors(
    wh: Tensor, k: int = 9, *, iters: int = 300, n_init: int = 1, seed: int = 0, init: str = "kmeans++"
) -> Tensor:
    """Cluster box sizes ``wh [N, 2]`` into ``k`` anchors ``[k, 2]`` with the ``1 - IoU`` distance of YOLO9000.

    Lloyd iterations: assign each box to the centroid of highest co-centred IoU, move each centroid to the mean
    width and height of its boxes, stop when the assignment no longer changes or after ``iters`` rounds. A
    cluster left empty is re-seeded with the box farthest from every centroid. ``init`` is ``"kmeans++"`` or
    ``"random"`` (k distinct boxes), drawn from a generator seeded with ``seed``; with ``n_init > 1`` the run of
    highest :func:`anchor_fitness` out of ``n_init`` initialisations is kept (k-means only finds a local
    optimum). The anchors come back sorted by area (smallest first), in the dtype and on the device of ``wh``.
    """
    wh = _check_wh(wh, "wh")
    for value, name in ((k, "k"), (iters, "iters"), (n_init, "n_init")):
        _check_count(value, name)
    if len(wh) < k:
        raise ValueError(f"wh: expected at least k={k} boxes to cluster, got {len(wh)}")
    if (wh.prod(dim=1) <= 0).any():
        raise ValueError("wh: expected positive widths and heights (a zero-area box has IoU 0 with any anchor)")
    if init not in KMEANS_INITS:
        raise ValueError(f"init: expected one of {KMEANS_INITS}, got {init!r}")
    points = wh.detach().to("cpu", torch.float64)
    generator = torch.Generator().manual_seed(seed)
    runs = [_lloyd(points, _init_centroids(points, k, init, generator), iters) for _ in range(n_init)]
    centroids = max(runs, key=lambda run: float(anchor_fitness(points, run)))
    centroids = centroids[centroids.prod(dim=1).argsort()]
    return centroids.to(dtype=wh.dtype, device=wh.device)
