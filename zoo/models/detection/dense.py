"""Flatten and select: the plumbing that dense (one-stage) detectors share, as detectron2's dense-detector
base and torchvision's RetinaNet head share theirs.

A dense head predicts K values per anchor at every cell of every pyramid level, as maps ``[N, A·K, H_l, W_l]``
(channel ``a·K + k`` for value k of anchor a). Flattened, they are one ``[N, P, K]`` tensor, P = Σ_l H_l·W_l·A,
ordered level, row, column, anchor: torchvision's order (``concat_box_prediction_layers``), which is also
that of :class:`~zoo.ops.anchors.AnchorGenerator`'s anchors.

Selection, per image, from scores ``[N, P, C]`` (every (prediction, class) pair a candidate, as in
torchvision's RetinaNet and FCOS):

    candidates   the ``topk`` best pairs of each level (or of all levels), of those scoring above ``score_thresh``
    clip         each candidate's box to its own image, x in [0, W_i], y in [0, H_i]
    NMS          class-wise (boxes of different classes never suppress each other), IoU above ``nms_thresh``
                 suppressed: ``zoo.ops.nms.batched_nms``, torchvision's conventions
    keep         the ``detections_per_img`` best, by decreasing score
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from zoo.ops.nms import batched_nms

__all__ = ["Candidates", "clip_to_images", "flatten_levels", "per_image", "select_detections", "top_candidates"]


def flatten_levels(outputs: Sequence[Tensor], num_values: int) -> Tensor:
    """Per-level maps ``[N, A·K, H_l, W_l]`` (K = ``num_values``) as one ``[N, Σ_l H_l·W_l·A, K]`` tensor,
    ordered level, row, column, anchor (module docstring)."""
    flat = []
    for level, output in enumerate(outputs):
        batch, channels, height, width = output.shape
        if channels % num_values:
            raise ValueError(
                f"outputs[{level}]: expected A·{num_values} channels ({num_values} values per anchor), got {channels}"
            )
        per_anchor = output.view(batch, channels // num_values, num_values, height, width)
        flat.append(per_anchor.permute(0, 3, 4, 1, 2).reshape(batch, -1, num_values))
    return torch.cat(flat, dim=1)


class Candidates(NamedTuple):
    """The (prediction, class) pairs kept from a batch, image by image, best first within each level."""

    image: Tensor  # [M] image index
    prediction: Tensor  # [M] index in the flattened predictions of the image
    labels: Tensor  # [M] class index
    scores: Tensor  # [M]


def top_candidates(
    scores: Tensor, topk: int, score_thresh: float, level_sizes: Sequence[int] | None = None
) -> Candidates:
    """The ``topk`` highest-scoring (prediction, class) pairs of each image (of each level, when
    ``level_sizes`` gives the number of predictions per level), of those scoring above ``score_thresh``."""
    num_images, num_predictions, num_classes = scores.shape
    level_sizes = [num_predictions] if level_sizes is None else list(level_sizes)
    if sum(level_sizes) != num_predictions:
        raise ValueError(f"level_sizes: expected counts summing to {num_predictions}, got {level_sizes}")
    top_scores, top_index, start = [], [], 0
    for level in scores.split(level_sizes, dim=1):  # a loop over the few levels
        values, index = level.flatten(1).topk(min(topk, level[0].numel()), dim=1)
        top_scores.append(values)
        top_index.append(index + start * num_classes)
        start += level.shape[1]
    top_scores, top_index = torch.cat(top_scores, dim=1), torch.cat(top_index, dim=1)
    keep = top_scores > score_thresh
    image = torch.arange(num_images, device=scores.device)[:, None].expand_as(top_index)[keep]
    top_index = top_index[keep]
    return Candidates(image, top_index // num_classes, top_index % num_classes, top_scores[keep])


def clip_to_images(boxes: Tensor, image: Tensor, image_sizes: Sequence[tuple[int, int]]) -> Tensor:
    """xyxy ``boxes [M, 4]`` clipped to the images they belong to (``image [M]`` indexes ``image_sizes``, each
    ``(H, W)``), as ``zoo.ops.boxes.clip_boxes_to_image`` clips one image's."""
    limits = torch.tensor([[w, h, w, h] for h, w in image_sizes], dtype=boxes.dtype, device=boxes.device)
    return torch.minimum(boxes.clamp(min=0), limits[image])


def per_image(boxes: Tensor, candidates: Candidates, num_images: int) -> list[dict[str, Tensor]]:
    """``[{"boxes", "scores", "labels"}]`` per image, from candidates (in any order) and their ``boxes``.

    One mask per image rather than a split by counts: the counts are values, which an exported graph cannot
    turn into Python ints."""
    detections = []
    for index in range(num_images):
        mine = candidates.image == index
        detections.append({"boxes": boxes[mine], "scores": candidates.scores[mine], "labels": candidates.labels[mine]})
    return detections


def select_detections(
    boxes: Tensor,
    candidates: Candidates,
    num_images: int,
    num_classes: int,
    nms_thresh: float,
    detections_per_img: int,
) -> list[dict[str, Tensor]]:
    """Class-wise NMS within each image, then its ``detections_per_img`` best (module docstring); ``boxes``
    ``[M, 4]`` xyxy are the candidates'."""
    # Kept by decreasing score, so each image's first ``detections_per_img`` are its best.
    kept = batched_nms(boxes, candidates.scores, candidates.image * num_classes + candidates.labels, nms_thresh)
    detections = per_image(boxes[kept], Candidates(*(field[kept] for field in candidates)), num_images)
    return [{key: value[:detections_per_img] for key, value in found.items()} for found in detections]
