"""The second stage of Faster R-CNN (Girshick, 2015, "Fast R-CNN"; Ren et al., 2015), drop-in for torchvision's
``roi_heads`` box branch.

Each proposal is pooled to a 7x7 grid from its FPN level (:class:`~zoo.ops.poolers.MultiScaleRoIAlign`, levels
"0".."3", 2x2 samples per bin), flattened and passed through two fully connected layers with ReLU
(:class:`TwoMLPHead`, 256·7·7 → 1024 → 1024), then :class:`FastRCNNPredictor` gives K class logits (class 0 is
the background) and 4K class-specific offsets, coded against the proposal with weights (10, 10, 5, 5).

Training: the ground-truth boxes are added to the proposals, each proposal is matched to the ground truth of
highest IoU (``Matcher(0.5, 0.5)``: foreground from 0.5, background below it, no low-quality matches), and
``batch_size_per_image`` proposals are sampled per image with at most ``positive_fraction`` foreground.
Over all R sampled proposals of the batch, with u the matched class (0 for background):

    loss_classifier = 1/R  sum_r  CE(logits_r, u_r)
    loss_box_reg    = 1/R  sum_{r: u_r > 0}  smooth_l1_beta=1/9(t_r^{u_r} - t*_r)

(only the offsets of the true class are trained; dividing by R, not by the number of foreground proposals,
is torchvision's choice).

Inference, per image: softmax over the classes, decode each class's box, clip to the image, drop the
background column, scores ≤ ``score_thresh`` (0.05) and boxes under 1e-2 pixels, NMS at ``nms_thresh`` (0.5)
within each class, and keep the ``detections_per_img`` (100) best.

With a mask branch (``mask_roi_pool``, ``mask_head``, ``mask_predictor``: Mask R-CNN, see mask_head.py) the
positive sampled proposals also give ``loss_mask`` in training, and the detections ``masks`` in eval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.ops.box_coder import BoxCoder
from zoo.ops.boxes import box_iou, clip_boxes_to_image, remove_small_boxes
from zoo.ops.losses import smooth_l1_loss
from zoo.ops.matcher import BalancedPositiveNegativeSampler, Matcher
from zoo.ops.nms import batched_nms
from zoo.ops.poolers import MultiScaleRoIAlign

from .mask_head import mask_probabilities, maskrcnn_loss

__all__ = ["FastRCNNPredictor", "RoIHeads", "TwoMLPHead", "fastrcnn_loss"]


class TwoMLPHead(nn.Module):
    """Flatten, then ``fc6`` and ``fc7`` with ReLU: ``(C·h·w + 1)·D + (D + 1)·D`` parameters
    (13,895,680 for C = 256 channels pooled to 7x7 and D = 1024)."""

    def __init__(self, in_channels: int, representation_size: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(start_dim=1)))))


class FastRCNNPredictor(nn.Module):
    """``cls_score`` (K logits) and ``bbox_pred`` (4K offsets) from a pooled feature: ``5 (D + 1) K`` parameters."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, 4 * num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.flatten(start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)


def fastrcnn_loss(
    class_logits: Tensor, box_regression: Tensor, labels: Sequence[Tensor], regression_targets: Sequence[Tensor]
) -> tuple[Tensor, Tensor]:
    """The classification and box losses of the sampled proposals (module docstring).

    ``class_logits [R, K]``, ``box_regression [R, 4K]``; per image, ``labels [R_i]`` (0 = background) and
    ``regression_targets [R_i, 4]``.
    """
    labels = torch.cat(list(labels))
    targets = torch.cat(list(regression_targets))
    classification_loss = F.cross_entropy(class_logits, labels)
    foreground = (labels > 0).nonzero().squeeze(1)
    offsets = box_regression.reshape(len(box_regression), -1, 4)[foreground, labels[foreground]]
    box_loss = smooth_l1_loss(offsets, targets[foreground], beta=1 / 9, reduction="sum") / labels.numel()
    return classification_loss, box_loss


class RoIHeads(nn.Module):
    """Pool the proposals, classify and refine them; a loss dict in training, detections in eval.

    ``forward(features, proposals, image_shapes, targets=None)`` returns ``(detections, losses)``: in eval
    ``[{"boxes", "labels", "scores"}]`` per image (boxes in the resized image's pixels) and ``{}``, in training
    ``[]`` and ``{"loss_classifier", "loss_box_reg"}``. Arguments and defaults are torchvision's. Setting
    ``mask_roi_pool``, ``mask_head`` and ``mask_predictor`` (None here, as torchvision's) adds the mask branch:
    ``"masks" [D, 1, M, M]`` probabilities in eval, ``"loss_mask"`` in training (targets then need ``"masks"``).
    """

    def __init__(
        self,
        box_roi_pool: MultiScaleRoIAlign,
        box_head: nn.Module,
        box_predictor: nn.Module,
        fg_iou_thresh: float = 0.5,
        bg_iou_thresh: float = 0.5,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        bbox_reg_weights: tuple[float, float, float, float] | None = None,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
    ) -> None:
        super().__init__()
        self.box_roi_pool = box_roi_pool
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=False)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.box_coder = BoxCoder((10.0, 10.0, 5.0, 5.0) if bbox_reg_weights is None else bbox_reg_weights)
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.mask_roi_pool: MultiScaleRoIAlign | None = None
        self.mask_head: nn.Module | None = None
        self.mask_predictor: nn.Module | None = None

    def has_mask(self) -> bool:
        return self.mask_predictor is not None

    def forward(
        self,
        features: Mapping[str, Tensor],
        proposals: Sequence[Tensor],
        image_shapes: Sequence[tuple[int, int]],
        targets: Sequence[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("targets: RoIHeads in training mode needs one {'boxes', 'labels'} dict per image")
            proposals, matched, labels, regression_targets = self.select_training_samples(proposals, targets)
        pooled = self.box_roi_pool(features, list(proposals), image_shapes)
        class_logits, box_regression = self.box_predictor(self.box_head(pooled))
        if self.training:
            loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
            losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
            if self.has_mask():
                losses["loss_mask"] = self.mask_loss(features, proposals, matched, labels, image_shapes, targets)
            return [], losses
        boxes, scores, labels = self.postprocess_detections(class_logits, box_regression, proposals, image_shapes)
        detections = [{"boxes": b, "labels": lab, "scores": s} for b, s, lab in zip(boxes, scores, labels, strict=True)]
        if self.has_mask():
            mask_logits = self.mask_logits(features, boxes, image_shapes)
            for detection, masks in zip(detections, mask_probabilities(mask_logits, labels), strict=True):
                detection["masks"] = masks
        return detections, {}

    def mask_logits(
        self, features: Mapping[str, Tensor], boxes: Sequence[Tensor], image_shapes: Sequence[tuple[int, int]]
    ) -> Tensor:
        """The mask branch's ``[R, K, M, M]`` logits for the boxes of every image."""
        return self.mask_predictor(self.mask_head(self.mask_roi_pool(features, list(boxes), image_shapes)))

    def mask_loss(
        self,
        features: Mapping[str, Tensor],
        proposals: Sequence[Tensor],
        matched: Sequence[Tensor],
        labels: Sequence[Tensor],
        image_shapes: Sequence[tuple[int, int]],
        targets: Sequence[dict[str, Tensor]],
    ) -> Tensor:
        """``loss_mask`` of the positive ones among the sampled proposals (mask_head.py)."""
        missing = [index for index, target in enumerate(targets) if "masks" not in target]
        if missing:
            raise ValueError(
                f"target of image {missing[0]}: the mask branch trains on instance 'masks' [K, H, W], missing"
            )
        positives = [(label > 0).nonzero().squeeze(1) for label in labels]
        boxes = [boxes[index] for boxes, index in zip(proposals, positives, strict=True)]
        indices = [matches[index] for matches, index in zip(matched, positives, strict=True)]
        gt_masks = [target["masks"] for target in targets]
        gt_labels = [target["labels"] for target in targets]
        return maskrcnn_loss(self.mask_logits(features, boxes, image_shapes), boxes, gt_masks, gt_labels, indices)

    def assign_targets_to_proposals(
        self, proposals: Sequence[Tensor], gt_boxes: Sequence[Tensor], gt_labels: Sequence[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Per image, each proposal's matched ground-truth index (clamped to >= 0) and class (0 background,
        -1 ignored)."""
        matched, labels = [], []
        for proposals_in_image, boxes, classes in zip(proposals, gt_boxes, gt_labels, strict=True):  # per image
            if boxes.numel() == 0:  # an image without objects: every proposal is background
                zeros = torch.zeros(len(proposals_in_image), dtype=torch.int64, device=proposals_in_image.device)
                matched.append(zeros)
                labels.append(zeros.clone())
                continue
            matches = self.proposal_matcher(box_iou(boxes, proposals_in_image))
            label = classes[matches.clamp(min=0)].to(torch.int64)
            label[matches == Matcher.BELOW_LOW_THRESHOLD] = 0
            label[matches == Matcher.BETWEEN_THRESHOLDS] = -1
            matched.append(matches.clamp(min=0))
            labels.append(label)
        return matched, labels

    def select_training_samples(
        self, proposals: Sequence[Tensor], targets: Sequence[dict[str, Tensor]]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        """Per image, the sampled proposals (ground truth included), the index of each one's matched ground
        truth (0 for the background), their classes and regression targets."""
        dtype = proposals[0].dtype
        gt_boxes = [target["boxes"].to(dtype) for target in targets]
        gt_labels = [target["labels"] for target in targets]
        proposals = [torch.cat([p, boxes]) for p, boxes in zip(proposals, gt_boxes, strict=True)]
        matched, labels = self.assign_targets_to_proposals(proposals, gt_boxes, gt_labels)
        positive_masks, negative_masks = self.fg_bg_sampler(labels)
        sampled_proposals, sampled_matches, sampled_labels, matched_boxes = [], [], [], []
        for index, (positive, negative) in enumerate(zip(positive_masks, negative_masks, strict=True)):  # per image
            sampled = (positive | negative).nonzero().squeeze(1)
            boxes = gt_boxes[index]
            if boxes.numel() == 0:  # no box to regress to; the zeros are never used (no foreground)
                boxes = boxes.new_zeros((1, 4))
            sampled_proposals.append(proposals[index][sampled])
            sampled_matches.append(matched[index][sampled])
            sampled_labels.append(labels[index][sampled])
            matched_boxes.append(boxes[sampled_matches[-1]])
        regression_targets = list(self.box_coder.encode(matched_boxes, sampled_proposals))
        return sampled_proposals, sampled_matches, sampled_labels, regression_targets

    def postprocess_detections(
        self,
        class_logits: Tensor,
        box_regression: Tensor,
        proposals: Sequence[Tensor],
        image_shapes: Sequence[tuple[int, int]],
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per image, the kept boxes ``[D, 4]``, scores ``[D]`` and labels ``[D]`` (module docstring)."""
        num_classes = class_logits.shape[-1]
        counts = [p.shape[0] for p in proposals]  # shapes, not len(): an exported graph keeps them symbolic
        all_boxes = self.box_coder.decode(box_regression, list(proposals)).split(counts)
        all_scores = F.softmax(class_logits, dim=-1).split(counts)
        results: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
        # A loop over the images: each keeps a different number of detections.
        for boxes, scores, shape in zip(all_boxes, all_scores, image_shapes, strict=True):
            boxes = clip_boxes_to_image(boxes, shape)[:, 1:].reshape(-1, 4)
            labels = torch.arange(1, num_classes, device=scores.device).repeat(scores.shape[0])
            scores = scores[:, 1:].reshape(-1)
            keep = (scores > self.score_thresh).nonzero().squeeze(1)
            keep = keep[remove_small_boxes(boxes[keep], 1e-2)]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            for result, value in zip(results, (boxes, scores, labels), strict=True):
                result.append(value[keep])
        return results
