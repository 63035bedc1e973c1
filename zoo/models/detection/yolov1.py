"""YOLOv1 (Redmon, Divvala, Girshick and Farhadi, 2016, "You Only Look Once", arXiv:1506.02640): detection as
one regression from the image to an S×S×(B·5 + C) tensor.

The image (resized to 448×448) is cut into an S×S grid (S = 7). Each cell predicts B = 2 boxes, each
(x, y, √w, √h, confidence), and one set of C class probabilities shared by its boxes (C = 20 on VOC: 7×7×30):

    x, y        the box centre inside the cell, in [0, 1] of the cell
    √w, √h      the square roots of the box size relative to the image (Darknet's ``sqrt=1``: the loss compares
                square roots, so that an error on a small box counts more than the same error on a large one)
    confidence  Pr(object)·IoU(prediction, truth)
    class score Pr(class | object) · confidence, per box at test time

The network (Figure 3): 24 convolutions (leaky ReLU, slope 0.1; 1×1 reductions before 3×3 convolutions, as in
GoogLeNet) and 2 fully connected layers, the second linear:

    conv 7×7/2 64, maxpool 2/2                                             448 → 112
    conv 3×3 192, maxpool                                                  → 56
    conv 1×1 128, 3×3 256, 1×1 256, 3×3 512, maxpool                       → 28
    4 × [conv 1×1 256, 3×3 512], conv 1×1 512, 3×3 1024, maxpool           → 14
    2 × [conv 1×1 512, 3×3 1024], conv 3×3 1024, conv 3×3/2 1024           → 7
    conv 3×3 1024, conv 3×3 1024                                           7×7×1024
    fc 4096 (leaky ReLU, dropout 0.5), fc S·S·(B·5 + C)

Parameters: Σ_conv (k²·C_in·C_out + C_out) + (S²·1024 + 1)·4096 + (4096 + 1)·S²·(5B + C): 60,155,968 in the
convolutions and 211,547,582 in the two fully connected layers at S = 7, B = 2, C = 20 (271,703,550 in all),
three quarters of them in the first fully connected layer.

The loss (eq. 3), summed over the images and divided by their number; cell i holds an object when the centre
of a ground-truth box falls in it (the largest, if several do), and of its B boxes the one with the highest
IoU with that truth is "responsible" (1_ij^obj):

    λ_coord Σ 1_ij^obj [(x − x̂)² + (y − ŷ)² + (√w − √ŵ)² + (√h − √ĥ)²]
    + Σ 1_ij^obj (IoU − Ĉ)² + λ_noobj Σ 1_ij^noobj Ĉ² + Σ_i 1_i^obj Σ_c (p_i(c) − p̂_i(c))²

with λ_coord = 5 and λ_noobj = 0.5 (most cells hold no object; without the weight their confidence pushes
drown the few cells that do). Every term is a squared error, as in the paper.

What came after: YOLOv2 (YOLO9000) added batch norm, a 416 px fully convolutional network on Darknet-19, anchor
boxes from k-means on the training boxes with sigmoid-bounded offsets, a passthrough layer for finer features
and multi-scale training; YOLOv3 (``zoo.models.detection.yolov3``) predicts at three scales on Darknet-53 with
independent logistic classifiers (multi-label) and binary cross-entropy for objectness and classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from zoo.models.darknet import darknet_leaky_relu
from zoo.models.features import FeatureListNet
from zoo.ops.boxes import box_iou
from zoo.registry import create_model, register_model

from .batching import as_image_list
from .dense import select_detections, top_candidates
from .targets import check_detection_targets

__all__ = ["YOLOV1_LAYERS", "YOLOv1", "yolov1", "yolov1_loss", "yolov1_resnet18"]

YOLOV1_PAPER = "Redmon et al. 2016, You Only Look Once: Unified, Real-Time Object Detection, arXiv:1506.02640"

# Figure 3, as rows: ("conv", out_channels, kernel, stride) or ("maxpool",).
YOLOV1_LAYERS = (
    ("conv", 64, 7, 2), ("maxpool",),
    ("conv", 192, 3, 1), ("maxpool",),
    ("conv", 128, 1, 1), ("conv", 256, 3, 1), ("conv", 256, 1, 1), ("conv", 512, 3, 1), ("maxpool",),
    *(("conv", 256, 1, 1), ("conv", 512, 3, 1)) * 4, ("conv", 512, 1, 1), ("conv", 1024, 3, 1), ("maxpool",),
    *(("conv", 512, 1, 1), ("conv", 1024, 3, 1)) * 2, ("conv", 1024, 3, 1), ("conv", 1024, 3, 2),
    ("conv", 1024, 3, 1), ("conv", 1024, 3, 1),
)  # fmt: skip


def darknet24(in_chans: int = 3) -> nn.Sequential:
    """YOLOv1's 24 convolutions (:data:`YOLOV1_LAYERS`): stride 64, 1024 channels."""
    layers: list[nn.Module] = []
    channels = in_chans
    for row in YOLOV1_LAYERS:
        if row[0] == "maxpool":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        _, out_channels, kernel, stride = row
        layers += [nn.Conv2d(channels, out_channels, kernel, stride, kernel // 2), darknet_leaky_relu()]
        channels = out_channels
    return nn.Sequential(*layers)


def _check_count(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


def cell_boxes(predictions: Tensor, boxes_per_cell: int, image_size: tuple[int, int]) -> Tensor:
    """``[N, S, S, B, 4]`` xyxy boxes in pixels of ``image_size`` (H, W) from the raw ``[N, S, S, 5B + C]``
    output: centre (column + x, row + y)/S, size (√w)², (√h)² of the image (module docstring)."""
    num, rows, cols, _ = predictions.shape
    raw = predictions[..., : 5 * boxes_per_cell].reshape(num, rows, cols, boxes_per_cell, 5)
    row_index = torch.arange(rows, device=raw.device, dtype=raw.dtype)[:, None, None]
    col_index = torch.arange(cols, device=raw.device, dtype=raw.dtype)[None, :, None]
    height, width = image_size
    cx = (col_index + raw[..., 0]) / cols * width
    cy = (row_index + raw[..., 1]) / rows * height
    w, h = raw[..., 2].square() * width, raw[..., 3].square() * height
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def yolov1_loss(
    predictions: Tensor,
    targets: Sequence[dict[str, Tensor]],
    boxes_per_cell: int,
    image_size: tuple[int, int],
    lambda_coord: float = 5.0,
    lambda_noobj: float = 0.5,
) -> dict[str, Tensor]:
    """Eq. 3 of the paper (module docstring) on the raw ``[N, S, S, 5B + C]`` output, targets in pixels of
    ``image_size``: ``{"loss_box", "loss_obj", "loss_noobj", "loss_class"}``, each summed per image and averaged
    over the images (``loss_box`` and ``loss_noobj`` carry their λ)."""
    num, rows, cols, _ = predictions.shape
    b = boxes_per_cell
    raw = predictions[..., : 5 * b].reshape(num, rows, cols, b, 5)
    class_probs = predictions[..., 5 * b :]
    decoded = cell_boxes(predictions, b, image_size)
    height, width = image_size
    terms = {key: predictions.new_zeros(()) for key in ("loss_box", "loss_obj", "loss_noobj", "loss_class")}
    for index, target in enumerate(targets):  # a loop over the images: each has its own objects
        responsible = torch.zeros(rows, cols, b, dtype=torch.bool, device=predictions.device)
        gt = target["boxes"].to(predictions.dtype)
        # The largest object last, so that it is the one a shared cell keeps.
        order = (gt[:, 2] - gt[:, 0]).mul(gt[:, 3] - gt[:, 1]).argsort()
        cells: dict[tuple[int, int], int] = {}
        centres = (gt[:, :2] + gt[:, 2:]) / 2
        for k in order.tolist():  # a loop over the few objects of one image
            col = min(int(centres[k, 0] / width * cols), cols - 1)
            row = min(int(centres[k, 1] / height * rows), rows - 1)
            cells[(row, col)] = k
        for (row, col), k in cells.items():
            box = gt[k]
            iou = box_iou(decoded[index, row, col].detach(), box[None])[:, 0]
            j = int(iou.argmax())
            responsible[row, col, j] = True
            x = centres[k, 0] / width * cols - col
            y = centres[k, 1] / height * rows - row
            sqrt_w = ((box[2] - box[0]) / width).sqrt()
            sqrt_h = ((box[3] - box[1]) / height).sqrt()
            truth = torch.stack([x, y, sqrt_w, sqrt_h])
            terms["loss_box"] = terms["loss_box"] + lambda_coord * (raw[index, row, col, j, :4] - truth).square().sum()
            terms["loss_obj"] = terms["loss_obj"] + (raw[index, row, col, j, 4] - iou[j]).square()
            one_hot = F.one_hot(target["labels"][k], class_probs.shape[-1]).to(predictions.dtype)
            terms["loss_class"] = terms["loss_class"] + (class_probs[index, row, col] - one_hot).square().sum()
        confidence = raw[index, ..., 4]
        terms["loss_noobj"] = terms["loss_noobj"] + lambda_noobj * confidence[~responsible].square().sum()
    return {key: value / max(num, 1) for key, value in terms.items()}


class YOLOv1(nn.Module):
    """``features`` (an image of ``image_size`` → a ``grid_size``² map) → ``head`` (fc ``hidden``, leaky ReLU,
    dropout, fc S²·(5B + C)); images of any size are resized to ``image_size`` and their detections mapped back.

    Training: ``model(images, targets)`` → the four loss terms of :func:`yolov1_loss`; eval: ``model(images)`` →
    ``[{"boxes", "scores", "labels"}]``: class score = Pr(class | object) · confidence per box, those above
    ``score_thresh``, class-wise NMS at ``nms_thresh``, the ``detections_per_img`` best. Labels are 0..C−1 (no
    background class).
    """

    def __init__(
        self,
        features: nn.Module,
        feature_channels: int,
        *,
        num_classes: int = 20,
        grid_size: int = 7,
        boxes_per_cell: int = 2,
        image_size: int = 448,
        hidden: int = 4096,
        dropout: float = 0.5,
        lambda_coord: float = 5.0,
        lambda_noobj: float = 0.5,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
    ) -> None:
        super().__init__()
        self.num_classes = _check_count(num_classes, "num_classes")
        self.grid_size = _check_count(grid_size, "grid_size")
        self.boxes_per_cell = _check_count(boxes_per_cell, "boxes_per_cell")
        self.image_size = (_check_count(image_size, "image_size"),) * 2
        self.lambda_coord, self.lambda_noobj = float(lambda_coord), float(lambda_noobj)
        self.score_thresh, self.nms_thresh = float(score_thresh), float(nms_thresh)
        self.detections_per_img = _check_count(detections_per_img, "detections_per_img")
        self.features = features
        self.feature_channels = feature_channels
        outputs = grid_size * grid_size * (5 * boxes_per_cell + num_classes)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(feature_channels * grid_size * grid_size, hidden),
            darknet_leaky_relu(),
            nn.Dropout(dropout),
            nn.Linear(hidden, outputs),
        )

    def forward_raw(self, images: Tensor) -> Tensor:
        """``[N, S, S, 5B + C]`` from a batch already at ``image_size``."""
        feature_map = self.features(images)
        expected = (self.feature_channels, self.grid_size, self.grid_size)
        if tuple(feature_map.shape[1:]) != expected:
            raise ValueError(
                f"YOLOv1 with a {self.grid_size}×{self.grid_size} grid needs a {expected} feature map from its "
                f"{self.image_size[0]}×{self.image_size[1]} input, got {tuple(feature_map.shape[1:])}: build it "
                "with a grid_size and image_size that agree (image_size = grid_size × the features' stride)"
            )
        s = self.grid_size
        return self.head(feature_map).view(len(images), s, s, -1)

    def _resized(self, images: Tensor | Sequence[Tensor]) -> tuple[Tensor, list[tuple[int, int]]]:
        images = as_image_list(images)
        sizes = []
        dtype = next(self.parameters()).dtype
        for index, image in enumerate(images):
            if image.dim() != 3 or image.shape[0] != 3 or not image.is_floating_point() or 0 in image.shape:
                raise ValueError(
                    f"images[{index}]: YOLOv1 expects a float [3, H, W] image, got {image.dtype} {list(image.shape)}"
                )
            if image.dtype != dtype:
                raise TypeError(f"images[{index}]: expected {dtype} (the model's weights), got {image.dtype}")
            sizes.append((int(image.shape[1]), int(image.shape[2])))
        batch = torch.cat(
            [F.interpolate(image[None], size=self.image_size, mode="bilinear", align_corners=False) for image in images]
        )
        return batch, sizes

    def _scaled_targets(self, targets, sizes: Sequence[tuple[int, int]], device) -> list[dict[str, Tensor]]:
        targets = check_detection_targets(
            targets, len(sizes), self.num_classes, device=device, model_name="YOLOv1", image_sizes=sizes
        )
        height, width = self.image_size
        scaled = []
        for target, (h, w) in zip(targets, sizes, strict=True):
            scale = target["boxes"].new_tensor([width / w, height / h, width / w, height / h])
            scaled.append({**target, "boxes": target["boxes"] * scale})
        return scaled

    def forward(
        self, images: Tensor | Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        batch, sizes = self._resized(images)
        if self.training:
            targets = self._scaled_targets(targets, sizes, batch.device)
            raw = self.forward_raw(batch)
            return yolov1_loss(raw, targets, self.boxes_per_cell, self.image_size, self.lambda_coord, self.lambda_noobj)
        return self.postprocess(self.forward_raw(batch), sizes)

    def postprocess(self, raw: Tensor, image_sizes: Sequence[tuple[int, int]]) -> list[dict[str, Tensor]]:
        """Class scores per box, threshold, boxes back in each image's pixels (clipped), class-wise NMS."""
        num, b = len(raw), self.boxes_per_cell
        boxes = cell_boxes(raw, b, self.image_size).reshape(num, -1, 4)
        confidence = raw[..., 4 : 5 * b : 5]  # [N, S, S, B]
        class_probs = raw[..., 5 * b :]  # [N, S, S, C]
        scores = (confidence[..., None] * class_probs[..., None, :]).reshape(num, -1, self.num_classes)
        candidates = top_candidates(scores, scores.shape[1] * self.num_classes, self.score_thresh)
        height, width = self.image_size
        scale = torch.tensor([[w / width, h / height, w / width, h / height] for h, w in image_sizes])
        scale = scale.to(boxes)[candidates.image]
        limits = torch.tensor([[w, h, w, h] for h, w in image_sizes]).to(boxes)[candidates.image]
        picked = torch.minimum((boxes[candidates.image, candidates.prediction] * scale).clamp(min=0), limits)
        return select_detections(picked, candidates, num, self.num_classes, self.nms_thresh, self.detections_per_img)


@register_model(task="detection", input_size=448, test_input_size=64, paper=YOLOV1_PAPER)
def yolov1(*, num_classes: int = 20, in_chans: int = 3, **kwargs) -> YOLOv1:
    """The paper's network: 24 convolutions (stride 64) on 448×448, a 7×7 grid, 2 boxes per cell,
    fc 4096 (271,703,550 parameters at 20 classes)."""
    return YOLOv1(darknet24(in_chans), 1024, num_classes=num_classes, **kwargs)


@register_model(task="detection", input_size=224, test_input_size=64, paper=YOLOV1_PAPER)
def yolov1_resnet18(*, num_classes: int = 20, hidden: int = 512, **kwargs) -> YOLOv1:
    """A CPU variant: ResNet-18's features (stride 32) on 224×224 give the 7×7 grid, fc 512."""
    backbone = FeatureListNet(create_model("resnet18"), [-1])
    features = nn.Sequential(backbone, _Last())
    return YOLOv1(features, 512, num_classes=num_classes, image_size=224, hidden=hidden, **kwargs)


class _Last(nn.Module):
    """The last map of a features_only network's list."""

    def forward(self, maps: list[Tensor]) -> Tensor:
        return maps[-1]
