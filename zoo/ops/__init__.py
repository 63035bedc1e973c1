"""Detection and segmentation ops from scratch, drop-in for ``torchvision.ops`` where it has the op.

boxes      formats, areas, IoU / GIoU / DIoU / CIoU (pairwise and paired), clipping, small-box removal
losses     GIoU / DIoU / CIoU losses, sigmoid focal, smooth L1, CenterNet's heatmap focal loss, soft Dice
nms        nms, batched_nms, nms_matrix (the same result from matrix ops), soft_nms (linear, Gaussian)
nms_variants  diou_nms, weighted_nms (box voting), matrix_nms (SOLOv2's parallel score decay)
roi_pool   roi_pool (RoIPool)
roi_align  roi_align (RoIAlign: aligned, fixed and adaptive sampling)
poolers    MultiScaleRoIAlign with the FPN level mapper (map_levels)
anchors    AnchorGenerator, YOLO k-means anchors
default_boxes  DefaultBoxGenerator (SSD's scales, aspect ratios and steps)
box_coder  BoxCoder (R-CNN deltas with weights and the log-scale clamp), BoxLinearCoder (FCOS's side distances)
matcher    Matcher (IoU thresholds, low-quality matches), SSDMatcher (+ each ground truth's best box),
           BalancedPositiveNegativeSampler
heatmap    CenterNet's Gaussian radius (corrected and as published) and heatmap drawing
assignment linear_sum_assignment (the Hungarian problem by shortest augmenting paths, scipy's signature)
"""

from zoo.ops.anchors import AnchorGenerator, anchor_fitness, kmeans_anchors, wh_iou
from zoo.ops.assignment import linear_sum_assignment
from zoo.ops.box_coder import BoxCoder, BoxLinearCoder
from zoo.ops.boxes import (
    box_area,
    box_convert,
    box_iou,
    clip_boxes_to_image,
    complete_box_iou,
    distance_box_iou,
    generalized_box_iou,
    paired_box_iou,
    remove_small_boxes,
)
from zoo.ops.default_boxes import DefaultBoxGenerator
from zoo.ops.heatmap import draw_gaussian, draw_gaussians, gaussian_radius
from zoo.ops.losses import (
    centernet_focal_loss,
    complete_box_iou_loss,
    dice_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
    sigmoid_focal_loss,
    smooth_l1_loss,
)
from zoo.ops.matcher import BalancedPositiveNegativeSampler, Matcher, SSDMatcher
from zoo.ops.nms import batched_nms, nms, nms_matrix, soft_nms
from zoo.ops.nms_variants import diou_nms, matrix_nms, weighted_nms
from zoo.ops.poolers import MultiScaleRoIAlign, map_levels
from zoo.ops.roi_align import roi_align
from zoo.ops.roi_pool import roi_pool

__all__ = [
    "AnchorGenerator",
    "BalancedPositiveNegativeSampler",
    "BoxCoder",
    "BoxLinearCoder",
    "DefaultBoxGenerator",
    "Matcher",
    "SSDMatcher",
    "MultiScaleRoIAlign",
    "anchor_fitness",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "centernet_focal_loss",
    "clip_boxes_to_image",
    "complete_box_iou",
    "complete_box_iou_loss",
    "dice_loss",
    "diou_nms",
    "distance_box_iou",
    "distance_box_iou_loss",
    "draw_gaussian",
    "draw_gaussians",
    "gaussian_radius",
    "generalized_box_iou",
    "generalized_box_iou_loss",
    "kmeans_anchors",
    "linear_sum_assignment",
    "map_levels",
    "matrix_nms",
    "paired_box_iou",
    "nms",
    "nms_matrix",
    "remove_small_boxes",
    "roi_align",
    "roi_pool",
    "sigmoid_focal_loss",
    "smooth_l1_loss",
    "soft_nms",
    "weighted_nms",
    "wh_iou",
]
