"""Model families, one file each; importing this package registers every builder."""

from zoo.models import darknet, efficientnet, inception, mobilenet, resnet, shufflenet, vgg, xception
from zoo.models.detection import centernet, yolov3
from zoo.models.segmentation import deeplab, unet
from zoo.models.base import FeatureInfo, ImageClassifier
from zoo.models.features import FeatureListNet
from zoo.models.resnet import ResNet

__all__ = [
    "FeatureInfo",
    "FeatureListNet",
    "ImageClassifier",
    "ResNet",
    "centernet",
    "darknet",
    "deeplab",
    "efficientnet",
    "inception",
    "mobilenet",
    "resnet",
    "shufflenet",
    "unet",
    "vgg",
    "xception",
    "yolov3",
]
