"""YOLOv3's target assignment and loss (Redmon & Farhadi, 2018, "YOLOv3: An Incremental Improvement",
arXiv:1804.02767, §2.1; Darknet's yolo_layer.c).

Targets. Each ground-truth box goes to the one anchor, of all nine, whose co-centred box has the highest IoU with
its width and height, at the cell of that anchor's level containing its centre (a later box overwrites an
earlier one on the same cell and anchor, as in Darknet):
    t̂_x = x/s − c_x,   t̂_y = y/s − c_y,   t̂_w = log(w/p_w),   t̂_h = log(h/p_h)
A prediction not assigned to a box, whose decoded box overlaps a ground truth of its image with IoU above
``ignore_thresh``, is not penalised as a negative. The paper's §2.1 gives 0.5, the model's default; Darknet's
yolov3.cfg sets ``ignore_thresh=.7``. Boxes of zero width or height cannot be encoded (log 0) and are skipped.

Loss: sums over the predictions of an image, averaged over the images. Darknet's deltas are the negative
gradients of these terms with respect to the raw outputs:
    loss_box = Σ_pos (2 − w·h/(W·H)) · [BCE(t_x, t̂_x) − H(t̂_x) + BCE(t_y, t̂_y) − H(t̂_y) + ½(t_w − t̂_w)² + ½(t_h − t̂_h)²]
    loss_obj = Σ_pos BCE(t_obj, 1) + Σ_{negatives not ignored} BCE(t_obj, 0)
    loss_cls = Σ_pos Σ_c BCE(t_c, [c = label])
with BCE taken on logits and W×H the input size. Subtracting the target's entropy H(t̂) makes the centre term
0 at a perfect fit without changing its gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.ops.anchors import wh_iou
from zoo.ops.boxes import box_iou

from .yolov3_decode import decode_boxes

__all__ = ["YOLOTargets", "encode_targets", "ignored_predictions", "yolov3_loss"]


class YOLOTargets(NamedTuple):
    """The positives of a batch, one row per assigned ground-truth box."""

    image: Tensor  # [G] image index
    index: Tensor  # [G] prediction index within the image (level, row, column, anchor)
    offsets: Tensor  # [G, 4] (t̂_x, t̂_y, t̂_w, t̂_h)
    labels: Tensor  # [G] class index
    weight: Tensor  # [G] 2 − w·h/(W·H)


def encode_targets(
    targets: Sequence[dict[str, Tensor]],
    anchors: Tensor,
    grid_sizes: Sequence[tuple[int, int]],
    input_size: tuple[int, int],
) -> YOLOTargets:
    """Assign each ground-truth box to its best-shaped anchor of ``anchors [L, A, 2]`` at the cell holding its
    centre, on levels of ``grid_sizes`` (rows, columns) (vectorised over the boxes of all images)."""
    device, num_anchors = anchors.device, anchors.shape[1]
    boxes = torch.cat([t["boxes"] for t in targets]).to(device, torch.float32).reshape(-1, 4)
    labels = torch.cat([t["labels"] for t in targets]).to(device, torch.int64).reshape(-1)
    counts = torch.tensor([len(t["boxes"]) for t in targets], device=device)
    image = torch.repeat_interleave(torch.arange(len(targets), device=device), counts)
    sizes = boxes[:, 2:] - boxes[:, :2]
    encodable = (sizes > 0).all(dim=1)
    boxes, labels, image, sizes = boxes[encodable], labels[encodable], image[encodable], sizes[encodable]

    best = wh_iou(sizes, anchors.reshape(-1, 2)).argmax(dim=1)  # the first of equal IoUs, as Darknet
    level, anchor = best // num_anchors, best % num_anchors
    grid = torch.tensor([list(g) for g in grid_sizes], device=device)  # [L, 2] (rows, columns)
    cells_per_level = num_anchors * grid.prod(dim=1)
    level_start = torch.cumsum(cells_per_level, 0) - cells_per_level
    columns, rows = grid[level, 1], grid[level, 0]
    grid_wh = torch.stack([columns, rows], dim=1).float()
    input_wh = torch.tensor([input_size[1], input_size[0]], device=device, dtype=torch.float32)
    strides = input_wh / grid_wh
    # A centre outside the image (a box partly outside) is assigned to the nearest border cell.
    centres = ((boxes[:, :2] + boxes[:, 2:]) / 2).clamp(min=torch.zeros_like(input_wh), max=input_wh)
    cells = torch.minimum((centres / strides).floor(), grid_wh - 1)
    index = level_start[level] + (cells[:, 1].long() * columns + cells[:, 0].long()) * num_anchors + anchor

    # One ground truth per prediction: the last of the boxes sharing it, as Darknet overwrites.
    total = int(cells_per_level.sum())
    keys, inverse = torch.unique(image * total + index, return_inverse=True)
    order = torch.arange(len(index), device=device)
    last = torch.full((len(keys),), -1, device=device).scatter_reduce(0, inverse, order, "amax")
    offsets = torch.cat([centres / strides - cells, torch.log(sizes / anchors.reshape(-1, 2)[best])], dim=1)
    weight = 2 - sizes.prod(dim=1) / (input_size[0] * input_size[1])
    return YOLOTargets(image[last], index[last], offsets[last], labels[last], weight[last])


def ignored_predictions(boxes: Tensor, targets: Sequence[dict[str, Tensor]], ignore_thresh: float) -> Tensor:
    """``[N, P]`` True where a decoded box overlaps a ground truth of its image with IoU above ``ignore_thresh``."""
    ignored = torch.zeros(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
    # One IoU matrix per image: images hold different numbers of boxes, and a single batch-wide matrix would
    # cost N·P·(all boxes) memory.
    for index, target in enumerate(targets):
        if len(target["boxes"]):
            ignored[index] = box_iou(boxes[index], target["boxes"]).amax(dim=1) > ignore_thresh
    return ignored


def yolov3_loss(
    predictions: Tensor,
    targets: Sequence[dict[str, Tensor]],
    anchors: Tensor,
    grid_sizes: Sequence[tuple[int, int]],
    input_size: tuple[int, int],
    ignore_thresh: float,
) -> dict[str, Tensor]:
    """The three loss terms of the module docstring from flattened predictions ``[N, P, 5 + C]``, per image
    summed and averaged over the images."""
    num_images, num_classes = len(predictions), predictions.shape[-1] - 5
    assigned = encode_targets(targets, anchors, grid_sizes, input_size)
    positives = predictions[assigned.image, assigned.index]

    target_xy = assigned.offsets[:, :2]
    # BCE minus the target's entropy: 0 at a perfect fit, the same gradient as Darknet's delta.
    xy = F.binary_cross_entropy_with_logits(positives[:, :2], target_xy, reduction="none")
    xy = xy + torch.xlogy(target_xy, target_xy) + torch.xlogy(1 - target_xy, 1 - target_xy)
    wh = 0.5 * (positives[:, 2:4] - assigned.offsets[:, 2:]).square()
    loss_box = (assigned.weight[:, None] * (xy + wh)).sum()

    objectness = torch.zeros_like(predictions[..., 4])
    objectness[assigned.image, assigned.index] = 1.0
    with torch.no_grad():
        boxes = decode_boxes(predictions, anchors, grid_sizes, input_size)
        ignored = ignored_predictions(boxes, targets, ignore_thresh)
    counted = (~ignored) | (objectness > 0)
    loss_obj = F.binary_cross_entropy_with_logits(predictions[..., 4], objectness, reduction="none")[counted].sum()

    one_hot = F.one_hot(assigned.labels, num_classes).to(positives.dtype)
    loss_cls = F.binary_cross_entropy_with_logits(positives[:, 5:], one_hot, reduction="sum")
    return {"loss_box": loss_box / num_images, "loss_obj": loss_obj / num_images, "loss_cls": loss_cls / num_images}
