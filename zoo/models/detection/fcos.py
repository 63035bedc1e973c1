"""FCOS (Tian, Shen, Chen & He, 2019, "FCOS: Fully Convolutional One-Stage Object Detection"), drop-in for
torchvision's ``FCOS``: RetinaNet's detector with one point per location instead of nine anchors, boxes regressed
as distances to their four sides, and a centre-ness branch that down-weights boxes predicted far from an object's
centre.

    images → transform → ResNet C3..C5 → FPN P3..P7 (as RetinaNet: retinanet.py)
           → at every level, shared:  4 × (conv3×3 + GroupNorm(32) + ReLU) → conv3×3 to K class logits
                                      4 × (conv3×3 + GroupNorm(32) + ReLU) → conv3×3 to ReLU(l, t, r, b)
                                                                             and conv3×3 to the centre-ness logit

The points: one anchor per cell, of the level's stride s (8..128) and aspect ratio 1, so its centre is the cell's
top-left corner (j s, i s) (torchvision's grid; the paper offsets it by s / 2). The regressed distances are in units
of s (``BoxLinearCoder``: l = (x − x1) / s, ...).

Targets (torchvision's rule): a point at (x, y) of stride s is positive for a box if

    centre sampling   max(|x − c_x|, |y − c_y|) < r s          (r = ``center_sampling_radius``, 1.5)
    inside            min(l*, t*, r*, b*) > 0                   (distances in pixels)
    its level's range 4 s < max(l*, t*, r*, b*) < 8 s           (no lower bound on P3, no upper on P7)

and among the boxes it is positive for takes the one of smallest area. Its centre-ness target is

    centre-ness* = sqrt( min(l*, r*) / max(l*, r*) · min(t*, b*) / max(t*, b*) )

Training (``{"classification", "bbox_regression", "bbox_ctrness"}``), over the whole batch, with N_fg positives:

    classification  = 1 / max(1, N_fg) · Σ_{points} Σ_k FL(x_k, [k = label])          (focal loss, α 0.25, γ 2)
    bbox_regression = 1 / max(1, N_fg) · Σ_{positives} (1 − GIoU(decoded box, box))
    bbox_ctrness    = 1 / max(1, N_fg) · Σ_{positives} BCE-with-logits(ctr, centre-ness*)

Evaluation: scores sqrt(σ(x_k) σ(ctr)), then RetinaNet's selection at ``score_thresh`` 0.2, NMS 0.6, 100
detections per image. Labels index the K class logits; 0 is the background, which no target may carry.

Parameters of ``fcos_resnet50_fpn`` at K = 91 (C = 256, frozen batch norm in the backbone):

    backbone + FPN                                         27,323,584    (as RetinaNet's)
    classification head   4 (9 C² + 3 C) + (9 C + 1) K      2,572,123
    regression head       4 (9 C² + 3 C) + (9 C + 1) 5      2,373,893
    total                                                  32,269,600    (32,322,720 with ordinary batch norm)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.layers.fpn import LastLevelP6P7
from zoo.layers.frozen_batch_norm import FrozenBatchNorm2d
from zoo.ops.anchors import AnchorGenerator
from zoo.ops.box_coder import BoxLinearCoder
from zoo.ops.losses import generalized_box_iou_loss, sigmoid_focal_loss
from zoo.registry import TORCHVISION_DOCS, Published, register_model
from zoo.weights import nest_reference_renames

from .backbone import resnet_fpn_backbone
from .dense import flatten_levels
from .retinanet import (
    SMALL_IMAGE_DEFAULTS,
    RetinaNet,
    RetinaNetClassificationHead,
    conv_tower,
    prediction_conv,
    small_image_backbone,
)

__all__ = ["FCOS", "FCOSHead", "FCOSRegressionHead", "fcos_resnet18_fpn", "fcos_resnet50_fpn"]

FCOS_PAPER = "Tian et al. 2019, FCOS: Fully Convolutional One-Stage Object Detection, arXiv:1904.01355"
STRIDES = (8, 16, 32, 64, 128)  # P3..P7: the points' anchor sizes
GROUPS = 32  # the towers' GroupNorm


def _group_norm(channels: int) -> nn.GroupNorm:
    if channels % GROUPS:
        raise ValueError(
            f"FCOS's towers use GroupNorm({GROUPS}): expected channels divisible by {GROUPS}, got {channels}"
        )
    return nn.GroupNorm(GROUPS, channels)


# torchvision's key → ours: its towers are flat Sequentials (conv i at index 3 i, its GroupNorm at 3 i + 1, the
# ReLU at 3 i + 2); ours are ConvNormActs. Anchored at the key's end, so that a renamed key is never renamed again.
def _flat_tower_renames(num_convs: int) -> list[tuple[str, str]]:
    renames = []
    for index in range(num_convs):
        renames.append((rf"^conv\.{3 * index}\.(weight|bias)$", rf"conv.{index}.conv.\1"))
        renames.append((rf"^conv\.{3 * index + 1}\.(weight|bias)$", rf"conv.{index}.bn.\1"))
    return renames


class FCOSRegressionHead(nn.Module):
    """Tower → conv3×3 to the four distances (through a ReLU: they are non-negative) and conv3×3 to the centre-ness
    logit. ``forward(features)`` returns the per-level maps ``([N, 4A, H, W], ...), ([N, A, H, W], ...)``.
    Parameters: n (9 C² + 3 C) + (9 C + 1) 5 A with GroupNorm."""

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        num_convs: int = 4,
        norm_layer: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.conv = conv_tower(in_channels, num_convs, _group_norm if norm_layer is None else norm_layer, bias=True)
        self.bbox_reg = prediction_conv(in_channels, 4 * num_anchors)
        self.bbox_ctrness = prediction_conv(in_channels, num_anchors)
        self.reference_renames = _flat_tower_renames(num_convs)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        distances, centreness = [], []
        for feature in features:  # a loop over the few levels
            hidden = self.conv(feature)
            distances.append(F.relu(self.bbox_reg(hidden)))
            centreness.append(self.bbox_ctrness(hidden))
        return distances, centreness


class FCOSHead(nn.Module):
    """RetinaNet's classification branch (GroupNorm towers, prior-probability bias) and FCOS's regression branch;
    ``forward(features)`` returns ``{"cls_logits" [N, P, K], "bbox_regression" [N, P, 4], "bbox_ctrness" [N, P, 1]}``.
    """

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, num_convs: int = 4) -> None:
        super().__init__()
        self.classification_head = RetinaNetClassificationHead(
            in_channels, num_anchors, num_classes, norm_layer=_group_norm, num_convs=num_convs, conv_bias=True
        )
        self.regression_head = FCOSRegressionHead(in_channels, num_anchors, num_convs)
        # Both of torchvision's FCOS branches have flat towers (RetinaNet's classification branch does not).
        self.reference_renames = nest_reference_renames(
            "classification_head", _flat_tower_renames(num_convs)
        ) + nest_reference_renames("regression_head", self.regression_head.reference_renames)

    def forward(self, features: Sequence[Tensor]) -> dict[str, Tensor]:
        distances, centreness = self.regression_head(features)
        return {
            "cls_logits": flatten_levels(self.classification_head(features), self.classification_head.num_classes),
            "bbox_regression": flatten_levels(distances, 4),
            "bbox_ctrness": flatten_levels(centreness, 1),
        }


class FCOS(RetinaNet):
    """FCOS on ``backbone``: :class:`RetinaNet`'s pipeline with FCOS's points, targets, loss and scores (module
    docstring). Arguments and defaults are torchvision's ``FCOS``'s; ``anchor_generator`` must give one anchor
    per cell, whose size (the level's stride) sets the level's size range and sampling radius."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        center_sampling_radius: float = 1.5,
        score_thresh: float = 0.2,
        nms_thresh: float = 0.6,
        detections_per_img: int = 100,
        topk_candidates: int = 1000,
        **kwargs,
    ) -> None:
        for unused in ("proposal_matcher", "fg_iou_thresh", "bg_iou_thresh"):
            if unused in kwargs:
                raise TypeError(f"FCOS assigns points by centre sampling, not by IoU: it takes no {unused!r}")
        super().__init__(
            backbone,
            num_classes,
            score_thresh=score_thresh,
            nms_thresh=nms_thresh,
            detections_per_img=detections_per_img,
            topk_candidates=topk_candidates,
            **kwargs,
        )
        if self.anchor_generator.num_anchors_per_location()[0] != 1:
            raise ValueError(
                "anchor_generator: FCOS needs one anchor (point) per cell, of the level's stride, got "
                f"{self.anchor_generator.num_anchors_per_location()[0]}"
            )
        if isinstance(center_sampling_radius, bool) or not center_sampling_radius > 0:
            raise ValueError(f"center_sampling_radius: expected a positive number, got {center_sampling_radius!r}")
        self.center_sampling_radius = float(center_sampling_radius)
        self.proposal_matcher = None  # points are assigned by centre sampling (match), not by IoU
        self.box_coder = BoxLinearCoder(normalize_by_size=True)

    @staticmethod
    def default_anchor_generator() -> AnchorGenerator:
        return AnchorGenerator(tuple((stride,) for stride in STRIDES), ((1.0,),) * len(STRIDES))

    def default_head(self, in_channels: int, num_anchors: int) -> nn.Module:
        return FCOSHead(in_channels, num_anchors, self.num_classes)

    def class_scores(self, head_outputs: dict[str, Tensor]) -> Tensor:
        """``[N, P, K]``: sqrt(σ(class logit) · σ(centre-ness logit))."""
        return torch.sqrt(head_outputs["cls_logits"].sigmoid() * head_outputs["bbox_ctrness"].sigmoid())

    def decode_boxes(self, codes: Tensor, anchors: Tensor) -> Tensor:
        return self.box_coder.decode(codes, anchors)

    def match(self, boxes: Tensor, anchors: Tensor, level_sizes: Sequence[int]) -> Tensor:
        """The box each point is assigned to ``[P]`` (-1: background) by the centre-sampling rule (module
        docstring)."""
        if boxes.numel() == 0:
            return torch.full((len(anchors),), -1, dtype=torch.int64, device=anchors.device)
        box_centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        points = (anchors[:, :2] + anchors[:, 2:]) / 2
        strides = anchors[:, 2] - anchors[:, 0]
        near_centre = (points[:, None] - box_centres[None]).abs().max(dim=2).values
        matches = near_centre < self.center_sampling_radius * strides[:, None]
        x, y = points[:, 0:1], points[:, 1:2]  # [P, 1] against the boxes' [M]
        distances = torch.stack((x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y), dim=2)
        matches &= distances.min(dim=2).values > 0
        lower, upper = strides * 4, strides * 8
        lower[: level_sizes[0]] = 0
        upper[-level_sizes[-1] :] = float("inf")
        longest = distances.max(dim=2).values
        matches &= (longest > lower[:, None]) & (longest < upper[:, None])
        # The smallest box among the matches: the largest 1e8 − area (torchvision's rule), first on a tie.
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        best, matched = (matches.to(torch.float32) * (1e8 - areas[None])).max(dim=1)
        matched[best < 1e-5] = -1
        return matched

    def compute_loss(
        self,
        targets: Sequence[dict[str, Tensor]],
        head_outputs: dict[str, Tensor],
        anchors: Sequence[Tensor],
        level_sizes: Sequence[int],
    ) -> dict[str, Tensor]:
        """The three FCOS losses over the batch (module docstring)."""
        labels, boxes = [], []
        for target, image_anchors in zip(targets, anchors, strict=True):  # each image has its own boxes
            matched = self.match(target["boxes"], image_anchors, level_sizes)
            if len(target["labels"]):
                image_labels = target["labels"][matched.clamp(min=0)]
                image_boxes = target["boxes"][matched.clamp(min=0)]
            else:
                image_labels = matched.new_zeros(len(matched))
                image_boxes = image_anchors.new_zeros((len(matched), 4))
            labels.append(torch.where(matched >= 0, image_labels, -1))
            boxes.append(image_boxes)
        labels, boxes, points = torch.stack(labels), torch.stack(boxes), torch.stack(list(anchors))
        foreground = labels >= 0
        num_foreground = foreground.sum().clamp(min=1)
        logits = head_outputs["cls_logits"]
        class_targets = torch.zeros_like(logits)
        class_targets[foreground, labels[foreground]] = 1.0
        classification = sigmoid_focal_loss(logits, class_targets, reduction="sum")
        predicted = self.box_coder.decode(head_outputs["bbox_regression"][foreground], points[foreground])
        regression = generalized_box_iou_loss(predicted, boxes[foreground], reduction="sum")
        distances = self.box_coder.encode(points[foreground], boxes[foreground])
        left_right, top_bottom = distances[:, [0, 2]], distances[:, [1, 3]]
        centreness = torch.sqrt(
            (left_right.min(dim=-1).values / left_right.max(dim=-1).values)
            * (top_bottom.min(dim=-1).values / top_bottom.max(dim=-1).values)
        )
        ctrness_logits = head_outputs["bbox_ctrness"][..., 0][foreground]
        ctrness = F.binary_cross_entropy_with_logits(ctrness_logits, centreness, reduction="sum")
        return {
            "classification": classification / num_foreground,
            "bbox_regression": regression / num_foreground,
            "bbox_ctrness": ctrness / num_foreground,
        }


@register_model(
    task="detection",
    input_size=800,
    reference="torchvision:fcos_resnet50_fpn",
    reference_kwargs={"weights_backbone": None},  # nothing is downloaded
    # torchvision's builder without pretrained weights uses ordinary batch norm and trains every stage.
    reference_build_kwargs={"norm_layer": nn.BatchNorm2d, "trainable_backbone_layers": 5},
    paper=FCOS_PAPER,
    published=Published(32_269_600, 128.207, TORCHVISION_DOCS, 0.05, True),
)
def fcos_resnet50_fpn(
    *,
    num_classes: int = 91,
    trainable_backbone_layers: int = 3,
    norm_layer: Callable[[int], nn.Module] = FrozenBatchNorm2d,
    **kwargs,
) -> FCOS:
    """torchvision's ``fcos_resnet50_fpn`` (32,269,600 parameters at 91 classes): RetinaNet's backbone (ResNet-50
    with frozen batch norm, its first two stages frozen, C3..C5 + P6, P7 from P5), FCOS's head, 800-1333 px input.
    ``norm_layer=nn.BatchNorm2d, trainable_backbone_layers=5`` is its setting without pretrained weights
    (32,322,720). Other keyword arguments go to :class:`FCOS`."""
    backbone = resnet_fpn_backbone(
        "resnet50",
        trainable_layers=trainable_backbone_layers,
        returned_layers=(2, 3, 4),
        extra_blocks=LastLevelP6P7(256, 256),
        norm_layer=norm_layer,
    )
    return FCOS(backbone, num_classes, **kwargs)


@register_model(task="detection", input_size=512, paper=FCOS_PAPER)
def fcos_resnet18_fpn(
    *,
    num_classes: int = 91,
    trainable_backbone_layers: int | None = None,
    norm_layer: Callable[[int], nn.Module] | None = None,
    fpn_out_channels: int = 256,
    **kwargs,
) -> FCOS:
    """FCOS on a ResNet-18 FPN (C3..C5 + P6, P7) for small, normalised images: no resizing or normalisation (the
    points, size ranges and sampling radius follow the strides, so they need no rescaling); the backbone is fully
    trainable with ordinary batch norm unless told otherwise. ``fpn_out_channels`` must be a multiple of 32 (the
    GroupNorm). 19,118,672 parameters at 11 classes."""
    backbone = small_image_backbone("resnet18", trainable_backbone_layers, norm_layer, fpn_out_channels)
    return FCOS(backbone, num_classes, **{**SMALL_IMAGE_DEFAULTS, **kwargs})
