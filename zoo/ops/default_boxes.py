"""SSD's default boxes (Liu et al., 2016, "SSD: Single Shot MultiBox Detector", sec. 2.2, "Choosing scales and
aspect ratios for default boxes"), drop-in for ``torchvision.models.detection.anchor_utils.DefaultBoxGenerator``.

With m feature maps, map k (k = 0 .. m-1) has the scale, as a fraction of the image side,

    s_k = s_min + (s_max - s_min) k / (m - 1),      s_m = 1          (or the ``scales`` given, m + 1 of them)

and, per cell, 2 + 2·|ratios_k| default boxes of (width, height), in this order:

    (s_k, s_k),   (s'_k, s'_k) with s'_k = sqrt(s_k s_{k+1}),
    then for each ratio a:   (s_k √a, s_k / √a),   (s_k / √a, s_k √a)

each clipped to [0, 1] when ``clip`` (torchvision clips the sizes, not the corners). The box of cell (i, j)
is centred at ((j + 0.5) / f_x, (i + 0.5) / f_y), with f = image size / step when ``steps`` are given (SSD300:
8, 16, 32, 64, 100, 300, so that the centres of a 38×38 map lie 8 px apart) and f = the map's own grid size
otherwise. Boxes are returned xyxy in pixels of the (padded) batch, ordered map, row, column, box: the order of
a dense head's flattened predictions (``zoo.models.detection.dense.flatten_levels``).

A model whose ``steps`` are fixed was built for one input size: a feature map whose grid is not
⌈image size / step⌉ means another input size, whose default boxes would not tile the image, and is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from zoo.ops.anchors import _batch_geometry

__all__ = ["DefaultBoxGenerator"]


def _positive_numbers(values: object) -> bool:
    return isinstance(values, Sequence) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values
    )


class DefaultBoxGenerator(nn.Module):
    """SSD's default boxes for a list of feature maps (module docstring); torchvision's arguments.

    Args:
        aspect_ratios: per feature map, the ratios a (besides 1) whose boxes a and 1/a are added.
        min_ratio, max_ratio: s_min and s_max of the scale formula, used when ``scales`` is None.
        scales: the m + 1 scales s_0 .. s_m (the last only sets s'_{m-1}).
        steps: per feature map, the pixel distance between box centres; None spreads them over the map's grid.
        clip: clip the boxes' widths and heights to [0, 1] of the image.
    """

    def __init__(
        self,
        aspect_ratios: Sequence[Sequence[float]],
        min_ratio: float = 0.15,
        max_ratio: float = 0.9,
        scales: Sequence[float] | None = None,
        steps: Sequence[int] | None = None,
        clip: bool = True,
    ) -> None:
        super().__init__()
        if (
            not isinstance(aspect_ratios, Sequence)
            or not aspect_ratios
            or not all(_positive_numbers(r) for r in aspect_ratios)
        ):
            raise ValueError(
                f"aspect_ratios: expected a list of positive ratios per feature map, got {aspect_ratios!r}"
            )
        count = len(aspect_ratios)
        if steps is not None and (len(steps) != count or not _positive_numbers(steps)):
            raise ValueError(f"steps: expected one positive step per feature map ({count}), got {steps!r}")
        if scales is None:
            if not 0 < min_ratio <= max_ratio:
                raise ValueError(
                    f"min_ratio, max_ratio: expected 0 < min_ratio <= max_ratio, got {min_ratio}, {max_ratio}"
                )
            if count > 1:
                scales = [min_ratio + (max_ratio - min_ratio) * k / (count - 1.0) for k in range(count)] + [1.0]
            else:
                scales = [min_ratio, max_ratio]
        elif len(scales) != count + 1 or not _positive_numbers(scales):
            raise ValueError(
                f"scales: expected {count + 1} positive scales (one more than feature maps), got {scales!r}"
            )
        self.aspect_ratios = [list(r) for r in aspect_ratios]
        self.scales = list(scales)
        self.steps = None if steps is None else list(steps)
        self.clip = bool(clip)
        self.box_sizes = [self._sizes(k) for k in range(count)]

    def _sizes(self, k: int) -> Tensor:
        """The (width, height) pairs of map k's boxes, ``[2 + 2 |ratios_k|, 2]`` (module docstring)."""
        scale, extra = self.scales[k], math.sqrt(self.scales[k] * self.scales[k + 1])
        pairs = [[scale, scale], [extra, extra]]
        for ratio in self.aspect_ratios[k]:
            root = math.sqrt(ratio)
            pairs += [[scale * root, scale / root], [scale / root, scale * root]]
        sizes = torch.as_tensor(pairs, dtype=torch.float32)
        return sizes.clamp(min=0, max=1) if self.clip else sizes

    def num_anchors_per_location(self) -> list[int]:
        """Boxes per cell, ``2 + 2 |ratios_k|`` for every map."""
        return [2 + 2 * len(r) for r in self.aspect_ratios]

    def expected_grids(self, image_size: tuple[int, int]) -> list[tuple[int, int]] | None:
        """The grid ``(⌈H / step⌉, ⌈W / step⌉)`` of every map that fixed ``steps`` were built for; None without."""
        if self.steps is None:
            return None
        return [(math.ceil(image_size[0] / step), math.ceil(image_size[1] / step)) for step in self.steps]

    def _check_grids(self, grids: list[tuple[int, int]], image_size: tuple[int, int]) -> None:
        if len(grids) != len(self.aspect_ratios):
            raise ValueError(
                f"feature_maps: expected {len(self.aspect_ratios)} (one per aspect-ratio list), got {len(grids)}"
            )
        expected = self.expected_grids(image_size)
        if expected is not None and grids != expected:
            raise ValueError(
                f"the default boxes were built with steps {self.steps}, for an input whose feature maps are "
                f"⌈size / step⌉ cells wide ({expected} at {image_size[0]}×{image_size[1]}), but the feature maps "
                f"are {grids}: is the input of the size the model was built for?"
            )

    def default_boxes(
        self, grids: Sequence[tuple[int, int]], image_size: tuple[int, int], dtype: torch.dtype
    ) -> Tensor:
        """Boxes ``[Σ_k H_k W_k (2 + 2 |ratios_k|), 4]`` as (cx, cy, w, h) fractions of the image."""
        boxes = []
        for k, (height, width) in enumerate(grids):  # a loop over the few maps; each is vectorised
            if self.steps is not None:
                cells_y, cells_x = image_size[0] / self.steps[k], image_size[1] / self.steps[k]
            else:
                cells_y, cells_x = height, width
            centre_x = ((torch.arange(width) + 0.5) / cells_x).to(dtype)
            centre_y = ((torch.arange(height) + 0.5) / cells_y).to(dtype)
            grid_y, grid_x = torch.meshgrid(centre_y, centre_x, indexing="ij")
            sizes = self.box_sizes[k]
            centres = torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=-1).repeat_interleave(len(sizes), 0)
            boxes.append(torch.cat((centres, sizes.to(dtype).repeat(height * width, 1)), dim=1))
        return torch.cat(boxes)

    def forward(self, images: Any, feature_maps: Sequence[Tensor] | Mapping[str, Tensor]) -> list[Tensor]:
        """One ``[P, 4]`` xyxy tensor per image, in pixels of the batch ``images`` (an ImageList or a tensor)."""
        batch_size, image_size = _batch_geometry(images)
        if isinstance(feature_maps, Mapping):
            feature_maps = list(feature_maps.values())
        grids = [(int(f.shape[-2]), int(f.shape[-1])) for f in feature_maps]
        self._check_grids(grids, image_size)
        reference = feature_maps[0]
        boxes = self.default_boxes(grids, image_size, reference.dtype).to(reference.device)
        scale = torch.tensor([image_size[1], image_size[0]], device=reference.device)
        corners = torch.cat(
            ((boxes[:, :2] - 0.5 * boxes[:, 2:]) * scale, (boxes[:, :2] + 0.5 * boxes[:, 2:]) * scale), 1
        )
        return [corners] + [corners.clone() for _ in range(batch_size - 1)]

    def extra_repr(self) -> str:
        return f"aspect_ratios={self.aspect_ratios}, clip={self.clip}, scales={self.scales}, steps={self.steps}"
