"""FPN's multi-scale RoIAlign (Lin et al., 2017), drop-in for ``torchvision.ops.MultiScaleRoIAlign`` and its
``poolers.LevelMapper``.

A box of area ``w h`` (image pixels) goes to pyramid level

    k = clamp(floor(k0 + log2(sqrt(w h) / 224) + eps), k_min, k_max)         (FPN, eq. 1)

and is pooled from that level by :func:`~zoo.ops.roi_align.roi_align` with the level's ``spatial_scale`` (feature
size / image size, rounded to a power of 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from zoo.ops._roi_common import Boxes, as_rois, check_input, check_output_size, is_int
from zoo.ops.boxes import box_area
from zoo.ops.roi_align import roi_align

__all__ = ["map_levels", "MultiScaleRoIAlign"]


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
    if not (is_int(k_min) and is_int(k_max)):
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


@torch.fx.wrap  # a leaf for torch.fx (the levels and scales come from the shapes), as torchvision's pooler is
def _multiscale_roi_align(
    x: dict[str, Tensor],
    boxes: Boxes,
    image_shapes: Sequence[tuple[int, int]],
    featmap_names: list[str],
    output_size: tuple[int, int],
    sampling_ratio: int,
    canonical_scale: int,
    canonical_level: int,
) -> Tensor:
    features = [value for name, value in x.items() if name in featmap_names]
    if not features:
        raise ValueError(f"x: none of the feature maps {featmap_names} is among {list(x)}")
    for feature in features:
        check_input(feature)
    channels = {int(feature.shape[1]) for feature in features}
    if len(channels) > 1:
        raise ValueError(f"x: the pooled feature maps must have equal channels, got {sorted(channels)}")
    if not image_shapes:
        raise ValueError("image_shapes: expected the (height, width) of at least one image, got none")
    image_height = max(int(shape[0]) for shape in image_shapes)
    exponents = [_level_exponent(feature, image_height) for feature in features]
    rois = as_rois(boxes, features[0])
    # Levels from the boxes as given (their own dtype), as torchvision's LevelMapper does.
    image_boxes = boxes[:, 1:] if isinstance(boxes, Tensor) else boxes
    levels = map_levels(image_boxes, -exponents[0], -exponents[-1], canonical_scale, canonical_level)
    result = features[0].new_zeros((rois.shape[0], features[0].shape[1], *output_size))  # shape: traceable
    # One roi_align per pyramid level (a handful), each over all of that level's RoIs at once (none is fine).
    for level, (feature, exponent) in enumerate(zip(features, exponents, strict=True)):
        index = torch.nonzero(levels == level).squeeze(1)
        pooled = roi_align(feature, rois[index], output_size, 2.0**exponent, sampling_ratio)
        result = result.index_copy(0, index, pooled.to(result.dtype))
    return result


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
        if not is_int(sampling_ratio):
            raise TypeError(f"sampling_ratio: expected an int, got {type(sampling_ratio).__name__}")
        self.featmap_names = list(featmap_names)
        self.output_size = check_output_size(output_size)
        self.sampling_ratio = int(sampling_ratio)
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def forward(self, x: dict[str, Tensor], boxes: Boxes, image_shapes: Sequence[tuple[int, int]]) -> Tensor:
        """``x``: feature maps by name; ``boxes``: per-image ``[L, 4]`` xyxy boxes in image pixels;
        ``image_shapes``: (height, width) of each image before the backbone. Returns ``[K, C, out_h, out_w]``."""
        return _multiscale_roi_align(
            x, boxes, image_shapes, self.featmap_names, self.output_size, self.sampling_ratio,
            self.canonical_scale, self.canonical_level,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"featmap_names={self.featmap_names}, output_size={self.output_size}, sampling_ratio={self.sampling_ratio}"
        )
