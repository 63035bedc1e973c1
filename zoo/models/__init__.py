"""Model families, one file each; importing this package registers every builder."""

from zoo.models import darknet, efficientnet, inception, mobilenet, resnet, shufflenet, swin, vgg, vit, xception
from zoo.models.base import FeatureInfo, ImageClassifier
from zoo.models.detection import centernet, detr, faster_rcnn, fcos, mask_rcnn, retinanet, ssd, yolov1, yolov3
from zoo.models.features import FeatureListNet
from zoo.models.resnet import ResNet
from zoo.models.segmentation import (
    deeplab,
    fcn,
    lraspp,
    pspnet,
    pspnet_smp,
    segnet,
    semantic_fpn,
    unet,
    unetplusplus,
)

__all__ = [
    "FeatureInfo",
    "FeatureListNet",
    "ImageClassifier",
    "ResNet",
    "centernet",
    "darknet",
    "deeplab",
    "detr",
    "efficientnet",
    "faster_rcnn",
    "fcn",
    "fcos",
    "inception",
    "lraspp",
    "mask_rcnn",
    "mobilenet",
    "pspnet",
    "pspnet_smp",
    "resnet",
    "retinanet",
    "segnet",
    "semantic_fpn",
    "shufflenet",
    "ssd",
    "swin",
    "unet",
    "unetplusplus",
    "vgg",
    "vit",
    "xception",
    "yolov1",
    "yolov3",
]
