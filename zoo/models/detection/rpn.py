"""The Region Proposal Network (Ren et al., 2015, "Faster R-CNN", sec. 3.1), drop-in for torchvision's ``rpn``.

Head, shared by every pyramid level (Lin et al., 2017, FPN, sec. 4.1): a 3x3 conv + ReLU, then two 1x1 convs
giving, per cell and per anchor a = 1..A, an objectness logit o_a and box offsets t_a = (t_x, t_y, t_w, t_h)
relative to the anchor (:class:`~zoo.ops.box_coder.BoxCoder` with unit weights).

Proposals (eval and training alike; the offsets are detached, no gradient flows through the proposals):
decode every anchor; per level keep the ``pre_nms_top_n`` highest logits; per image clip to the image, drop
boxes narrower or lower than 1e-3 pixels and scores sigmoid(o) below ``score_thresh``, run NMS at ``nms_thresh``
within each level, and keep the ``post_nms_top_n`` best.

Loss (training): anchors are matched to the ground truth by IoU (``Matcher(0.7, 0.3)`` with the low-quality
matches of rule (i): the best anchor of every ground-truth box is positive), ``batch_size_per_image`` anchors
are sampled per image with at most ``positive_fraction`` positives, and over the S sampled anchors

    loss_objectness  = 1/S  sum_sampled  BCE-with-logits(o, label)
    loss_rpn_box_reg = 1/S  sum_positive smooth_l1_beta=1/9(t - t*)

where t* encodes the matched ground-truth box. An image without boxes gives only negatives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.ops.anchors import AnchorGenerator
from zoo.ops.box_coder import BoxCoder
from zoo.ops.boxes import box_iou, clip_boxes_to_image, remove_small_boxes
from zoo.ops.losses import smooth_l1_loss
from zoo.ops.matcher import BalancedPositiveNegativeSampler, Matcher
from zoo.ops.nms import batched_nms
from zoo.weights import nest_reference_renames

from .batching import ImageList
from .dense import flatten_levels

__all__ = ["RPNHead", "RegionProposalNetwork"]

MODES = ("training", "testing")


class RPNHead(nn.Module):
    """3x3 conv (bias) + ReLU, then 1x1 convs to ``num_anchors`` logits and ``4 num_anchors`` box offsets.

    Every conv starts from N(0, 0.01²) weights and zero biases (the paper's initialisation). Parameters:
    9 C² + C + (C + 1) A + (C + 1) 4A for C input channels (C = 256, A = 3: 593,935).
    """

    # torchvision's key → ours: its conv is a Sequential of one Conv2dNormActivation ([conv, ReLU]), before
    # version 2 a bare conv; ours is a ConvNormAct without a norm.
    reference_renames = [(r"^conv\.0\.0\.", "conv.conv."), (r"^conv\.(weight|bias)$", r"conv.conv.\1")]

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = ConvNormAct(in_channels, in_channels, 3, bias=True, norm_layer=None)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, 4 * num_anchors, 1)
        for conv in (self.conv.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level ``[N, A, H, W]`` logits and ``[N, 4A, H, W]`` offsets."""
        logits, offsets = [], []
        for feature in features:  # the head is shared by the (few) pyramid levels
            hidden = self.conv(feature)
            logits.append(self.cls_logits(hidden))
            offsets.append(self.bbox_pred(hidden))
        return logits, offsets


def _check_top_n(value: Mapping[str, int], name: str) -> dict[str, int]:
    if not isinstance(value, Mapping) or set(value) != set(MODES):
        raise ValueError(f"{name}: expected a dict with keys {MODES}, got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value.values()):
        raise ValueError(f"{name}: expected positive ints, got {value!r}")
    return dict(value)


class RegionProposalNetwork(nn.Module):
    """Anchors + :class:`RPNHead` → proposals, and in training the two RPN losses (module docstring).

    ``forward(images, features, targets=None)`` takes an :class:`~zoo.models.detection.transform.ImageList`,
    the feature maps by name (all are used, in order) and in training the targets (``"boxes"`` in the padded
    image's pixels); it returns the per-image proposals ``[P_i, 4]`` (by decreasing objectness) and a loss
    dict (empty in eval mode). The arguments are torchvision's, in its order, with Faster R-CNN's values as
    defaults; ``pre_nms_top_n`` and ``post_nms_top_n`` are dicts with a "training" and a "testing" count.
    """

    def __init__(
        self,
        anchor_generator: AnchorGenerator,
        head: nn.Module,
        fg_iou_thresh: float = 0.7,
        bg_iou_thresh: float = 0.3,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        pre_nms_top_n: Mapping[str, int] | None = None,
        post_nms_top_n: Mapping[str, int] | None = None,
        nms_thresh: float = 0.7,
        score_thresh: float = 0.0,
        min_size: float = 1e-3,
    ) -> None:
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.proposal_matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.fg_bg_sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        defaults = {"training": 2000, "testing": 1000}
        self._pre_nms_top_n = _check_top_n(defaults if pre_nms_top_n is None else pre_nms_top_n, "pre_nms_top_n")
        self._post_nms_top_n = _check_top_n(defaults if post_nms_top_n is None else post_nms_top_n, "post_nms_top_n")
        self.nms_thresh = nms_thresh
        self.score_thresh = score_thresh
        self.min_size = min_size
        self.reference_renames = nest_reference_renames("head", getattr(head, "reference_renames", []))

    def pre_nms_top_n(self) -> int:
        return self._pre_nms_top_n["training" if self.training else "testing"]

    def post_nms_top_n(self) -> int:
        return self._post_nms_top_n["training" if self.training else "testing"]

    def forward(
        self,
        images: ImageList,
        features: Mapping[str, Tensor],
        targets: Sequence[dict[str, Tensor]] | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        feature_maps = list(features.values())
        logits, offsets = self.head(feature_maps)
        anchors = self.anchor_generator(images, feature_maps)
        anchors_per_level = [logit[0].numel() for logit in logits]
        # [N, R] and [N, R, 4] in the anchors' order (level, row, column, anchor).
        logits, offsets = flatten_levels(logits, 1).flatten(1), flatten_levels(offsets, 4)
        proposals = self.box_coder.decode(offsets.detach().reshape(-1, 4), anchors).view(len(anchors), -1, 4)
        boxes, _ = self.filter_proposals(proposals, logits.detach(), images.image_sizes, anchors_per_level)
        if not self.training:
            return boxes, {}
        if targets is None:
            raise ValueError("targets: the RPN in training mode needs one {'boxes': ...} dict per image, got None")
        labels, matched_boxes = self.assign_targets_to_anchors(anchors, targets)
        regression_targets = self.box_coder.encode(matched_boxes, anchors)
        loss_objectness, loss_box = self.compute_loss(
            logits.flatten(), offsets.reshape(-1, 4), labels, regression_targets
        )
        return boxes, {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_box}

    def _top_n_per_level(self, logits: Tensor, anchors_per_level: Sequence[int]) -> Tensor:
        """Indices ``[N, sum_l min(pre_nms_top_n, R_l)]`` of the highest logits of each level."""
        indices, offset = [], 0
        for level in logits.split(list(anchors_per_level), dim=1):  # a loop over the few levels
            indices.append(level.topk(min(self.pre_nms_top_n(), level.shape[1]), dim=1).indices + offset)
            offset += level.shape[1]
        return torch.cat(indices, dim=1)

    def filter_proposals(
        self,
        proposals: Tensor,
        logits: Tensor,
        image_sizes: Sequence[tuple[int, int]],
        anchors_per_level: Sequence[int],
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Per image, the proposals kept (module docstring) and their objectness probabilities."""
        counts = torch.tensor(list(anchors_per_level), device=logits.device)
        levels = torch.repeat_interleave(torch.arange(len(counts), device=logits.device), counts)
        top = self._top_n_per_level(logits, anchors_per_level)
        rows = torch.arange(len(proposals), device=logits.device)[:, None]
        proposals, scores, levels = proposals[rows, top], torch.sigmoid(logits[rows, top]), levels[top]
        kept_boxes, kept_scores = [], []
        # A loop over the images: each keeps a different number of boxes.
        for boxes, score, level, size in zip(proposals, scores, levels, image_sizes, strict=True):
            boxes = clip_boxes_to_image(boxes, size)
            keep = remove_small_boxes(boxes, self.min_size)
            keep = keep[score[keep] >= self.score_thresh]
            boxes, score, level = boxes[keep], score[keep], level[keep]
            keep = batched_nms(boxes, score, level, self.nms_thresh)[: self.post_nms_top_n()]
            kept_boxes.append(boxes[keep])
            kept_scores.append(score[keep])
        return kept_boxes, kept_scores

    def assign_targets_to_anchors(
        self, anchors: Sequence[Tensor], targets: Sequence[dict[str, Tensor]]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Per image, anchor labels (1 object, 0 background, -1 ignored; float) and each anchor's matched box."""
        labels, matched_boxes = [], []
        for anchors_in_image, target in zip(anchors, targets, strict=True):  # a loop over the images
            gt_boxes = target["boxes"]
            if gt_boxes.numel() == 0:  # an image without objects: every anchor is background
                labels.append(anchors_in_image.new_zeros(len(anchors_in_image)))
                matched_boxes.append(torch.zeros_like(anchors_in_image))
                continue
            matches = self.proposal_matcher(box_iou(gt_boxes, anchors_in_image))
            matched_boxes.append(gt_boxes[matches.clamp(min=0)])
            label = (matches >= 0).to(anchors_in_image.dtype)
            label[matches == Matcher.BETWEEN_THRESHOLDS] = -1.0
            labels.append(label)
        return labels, matched_boxes

    def compute_loss(
        self, logits: Tensor, offsets: Tensor, labels: Sequence[Tensor], regression_targets: Sequence[Tensor]
    ) -> tuple[Tensor, Tensor]:
        """The objectness and box losses over the sampled anchors (module docstring)."""
        positive_masks, negative_masks = self.fg_bg_sampler(labels)
        positive = torch.cat(positive_masks).nonzero().squeeze(1)
        negative = torch.cat(negative_masks).nonzero().squeeze(1)
        sampled = torch.cat([positive, negative])
        targets = torch.cat(list(regression_targets))
        box_loss = smooth_l1_loss(offsets[positive], targets[positive], beta=1 / 9, reduction="sum") / sampled.numel()
        objectness_loss = F.binary_cross_entropy_with_logits(logits[sampled], torch.cat(list(labels))[sampled])
        return objectness_loss, box_loss
