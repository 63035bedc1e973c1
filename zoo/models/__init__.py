"""Model families, one file each; importing this package registers every builder."""

from zoo.models import darknet, efficientnet, inception, mobilenet, resnet, shufflenet, swin, vgg, vit, xception
from zoo.models.base import FeatureInfo, ImageClassifier
from zoo.models.detection import centernet, detr, faster_rcnn, fcos, retinanet, yolov3
from zoo.models.features import FeatureListNet
from zoo.models.resnet import ResNet
from zoo.models.segmentation import deeplab, fcn, lraspp, unet

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
    "mobilenet",
    "resnet",
    "retinanet",
    "shufflenet",
    "swin",
    "unet",
    "vgg",
    "vit",
    "xception",
    "yolov3",
]
