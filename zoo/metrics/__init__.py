"""Metrics from scratch, each checked against scikit-learn, pycocotools or torchmetrics in the tests.

labels            confusion matrix, accuracy (top-k), precision / recall / F1
ranking           ROC curve and AUC (trapezoid and rank forms), PR curve and average precision
coco              COCO mAP / mAR of boxes or instance masks with torchmetrics' keys (pycocotools' rules)
voc               PASCAL VOC AP (11-point, all-point) and mAP
segmentation      pixel accuracy, per-class and mean IoU and Dice with ignore_index, from the confusion matrix
classification_inputs, detection_inputs   the input checks each family shares
Every accumulator follows ``zoo.metrics.base.Metric``: ``update`` per batch, ``compute``, ``reset``.
"""

from zoo.metrics.base import Metric
from zoo.metrics.coco import MeanAveragePrecision, mean_average_precision
from zoo.metrics.labels import (
    Accuracy,
    ConfusionMatrix,
    PrecisionRecallF1,
    accuracy,
    confusion_matrix,
    f1_score,
    precision,
    precision_recall_f1,
    recall,
)
from zoo.metrics.ranking import (
    ROCAUC,
    AveragePrecision,
    average_precision,
    precision_recall_curve,
    roc_auc,
    roc_auc_rank,
    roc_auc_trapezoid,
    roc_curve,
)
from zoo.metrics.segmentation import (
    SegmentationMetrics,
    dice_per_class,
    iou_per_class,
    mean_dice,
    mean_iou,
    pixel_accuracy,
)
from zoo.metrics.voc import voc_average_precision, voc_map

__all__ = [
    "ROCAUC",
    "Accuracy",
    "AveragePrecision",
    "ConfusionMatrix",
    "MeanAveragePrecision",
    "Metric",
    "PrecisionRecallF1",
    "SegmentationMetrics",
    "accuracy",
    "average_precision",
    "confusion_matrix",
    "dice_per_class",
    "f1_score",
    "iou_per_class",
    "mean_average_precision",
    "mean_dice",
    "mean_iou",
    "pixel_accuracy",
    "precision",
    "precision_recall_curve",
    "precision_recall_f1",
    "recall",
    "roc_auc",
    "roc_auc_rank",
    "roc_auc_trapezoid",
    "roc_curve",
    "voc_average_precision",
    "voc_map",
]
