"""Faster R-CNN (Ren, He, Girshick & Sun, 2015, "Faster R-CNN: Towards Real-Time Object Detection with Region
Proposal Networks") with an FPN backbone (Lin et al., 2017), drop-in for torchvision's ``FasterRCNN``:

    images → transform (normalise, resize, pad: transform.py) → backbone + FPN {"0".."3", "pool"}
           → RPN (rpn.py): ≤ 1000 proposals per image (2000 in training)
           → RoI heads (roi_heads.py): RoIAlign 7x7 → 2 FC (1024) → K class logits + 4K offsets
           → detections, scaled back to the input size

Training returns ``{"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}`` (to be summed),
evaluation ``[{"boxes" [D, 4] xyxy in input pixels, "scores" [D], "labels" [D] int64}]``. Labels index the
classifier outputs; 0 is the background.

Parameters of ``faster_rcnn_resnet50_fpn`` at K = 91 classes (frozen batch norm in the backbone):

    backbone + FPN                                   26,799,296
    RPN head         9 C² + C + 5 (C + 1) A             593,935    (C = 256 channels, A = 3 anchors)
    box head         (49 C + 1) D + (D + 1) D        13,895,680    (D = 1024)
    predictor        5 (D + 1) K                        466,375
    total                                            41,755,286    (41,808,406 with ordinary batch norm,
                                                                    whose γ and β add 2 x 26,560)

The small-image builders (``faster_rcnn_resnet18_fpn``, ``faster_rcnn_mobilenet_v3_large_fpn``) are for data
that the pipeline has already normalised and sized, such as zoo's 64-128 px synthetic scenes: no
normalisation, no resizing, anchors of 16..256 px (the paper's 32..512 are too large for 128 px images), and,
so that a step stays cheap on a CPU, fewer proposals (pre-/post-NMS top-n 1000/500 in training and 500/300 in
evaluation, 300 being the paper's test-time count, instead of 2000/2000 and 1000/1000), 128 sampled RoIs per
image instead of 512, and a 256-wide box head instead of 1024 (whose first FC layer would be 12.8 M of the
28 M parameters and most of the compute at this image size): ``SMALL_IMAGE_DEFAULTS``. Every one of these is
a keyword argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

import zoo.models.mobilenet  # noqa: F401  (registers the MobileNet backbones)
import zoo.models.resnet  # noqa: F401  (registers the ResNet backbones)
from zoo.layers.frozen_batch_norm import FrozenBatchNorm2d
from zoo.models.base import check_image_batch
from zoo.ops.anchors import AnchorGenerator
from zoo.ops.poolers import MultiScaleRoIAlign
from zoo.registry import register_model
from zoo.weights import nest_reference_renames

from .backbone import BackboneWithFPN, backbone_with_fpn, resnet_fpn_backbone
from .batching import as_image_list
from .roi_heads import FastRCNNPredictor, RoIHeads, TwoMLPHead
from .rpn import RegionProposalNetwork, RPNHead
from .targets import check_detection_targets
from .transform import IMAGENET_MEAN, IMAGENET_STD, GeneralizedRCNNTransform

__all__ = [
    "SMALL_IMAGE_DEFAULTS",
    "FasterRCNN",
    "faster_rcnn_mobilenet_v3_large_fpn",
    "faster_rcnn_resnet18_fpn",
    "faster_rcnn_resnet50_fpn",
]

# The paper's anchors: one size per FPN level ("0".."3", "pool"), three aspect ratios each.
FASTER_RCNN_PAPER = "Ren et al. 2015, Faster R-CNN, arXiv:1506.01497; Lin et al. 2016, FPN, arXiv:1612.03144"

DEFAULT_ANCHOR_SIZES = (32, 64, 128, 256, 512)
DEFAULT_ASPECT_RATIOS = (0.5, 1.0, 2.0)

# Builder defaults for small, already normalised images (module docstring).
SMALL_IMAGE_DEFAULTS = {
    "min_size": None,
    "max_size": None,
    "image_mean": None,
    "image_std": None,
    "rpn_pre_nms_top_n_train": 1000,
    "rpn_post_nms_top_n_train": 500,
    "rpn_pre_nms_top_n_test": 500,
    "rpn_post_nms_top_n_test": 300,
    "box_batch_size_per_image": 128,
    "representation_size": 256,
}
SMALL_IMAGE_ANCHOR_SIZES = (16, 32, 64, 128, 256)


def pyramid_names(backbone: nn.Module) -> list[str]:
    """The FPN levels the RoIs are pooled from: the body's stages "0".."k-1" (not the extra "pool" level)."""
    if isinstance(backbone, BackboneWithFPN):
        return [str(index) for index in range(len(backbone.body.feature_info.channels()))]
    return ["0", "1", "2", "3"]


class FasterRCNN(nn.Module):
    """Faster R-CNN on ``backbone`` (a module with ``out_channels`` returning named feature maps).

    Arguments and defaults are torchvision's ``FasterRCNN``'s (module docstring), except: ``min_size=None``
    turns resizing off, ``image_mean=image_std=None`` normalisation off, and ``representation_size`` sets the
    width of the box head's two FC layers. Give ``num_classes`` (background included) or a ``box_predictor``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int | None = None,
        *,
        min_size: int | Sequence[int] | None = 800,
        max_size: int | None = 1333,
        image_mean: Sequence[float] | None = IMAGENET_MEAN,
        image_std: Sequence[float] | None = IMAGENET_STD,
        size_divisible: int = 32,
        rpn_anchor_generator: AnchorGenerator | None = None,
        rpn_head: nn.Module | None = None,
        rpn_pre_nms_top_n_train: int = 2000,
        rpn_pre_nms_top_n_test: int = 1000,
        rpn_post_nms_top_n_train: int = 2000,
        rpn_post_nms_top_n_test: int = 1000,
        rpn_nms_thresh: float = 0.7,
        rpn_fg_iou_thresh: float = 0.7,
        rpn_bg_iou_thresh: float = 0.3,
        rpn_batch_size_per_image: int = 256,
        rpn_positive_fraction: float = 0.5,
        rpn_score_thresh: float = 0.0,
        box_roi_pool: MultiScaleRoIAlign | None = None,
        box_head: nn.Module | None = None,
        box_predictor: nn.Module | None = None,
        box_score_thresh: float = 0.05,
        box_nms_thresh: float = 0.5,
        box_detections_per_img: int = 100,
        box_fg_iou_thresh: float = 0.5,
        box_bg_iou_thresh: float = 0.5,
        box_batch_size_per_image: int = 512,
        box_positive_fraction: float = 0.25,
        bbox_reg_weights: tuple[float, float, float, float] | None = None,
        representation_size: int = 1024,
    ) -> None:
        super().__init__()
        out_channels = getattr(backbone, "out_channels", None)
        if not isinstance(out_channels, int):
            raise ValueError("backbone: expected a module with an int `out_channels` (the width of every level)")
        if (num_classes is None) == (box_predictor is None):
            raise ValueError("give either num_classes (with the default box_predictor) or a box_predictor, not both")
        if box_predictor is None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
        ):
            raise ValueError(f"num_classes: expected an int >= 2 (background + object classes), got {num_classes!r}")
        anchors = rpn_anchor_generator
        if anchors is None:
            sizes = tuple((size,) for size in DEFAULT_ANCHOR_SIZES)
            anchors = AnchorGenerator(sizes, (DEFAULT_ASPECT_RATIOS,) * len(sizes))
        if rpn_head is None:
            rpn_head = RPNHead(out_channels, anchors.num_anchors_per_location()[0])
        self.transform = GeneralizedRCNNTransform(min_size, max_size, image_mean, image_std, size_divisible)
        self.backbone = backbone
        self.rpn = RegionProposalNetwork(
            anchors,
            rpn_head,
            rpn_fg_iou_thresh,
            rpn_bg_iou_thresh,
            rpn_batch_size_per_image,
            rpn_positive_fraction,
            {"training": rpn_pre_nms_top_n_train, "testing": rpn_pre_nms_top_n_test},
            {"training": rpn_post_nms_top_n_train, "testing": rpn_post_nms_top_n_test},
            rpn_nms_thresh,
            rpn_score_thresh,
        )
        if box_roi_pool is None:
            box_roi_pool = MultiScaleRoIAlign(pyramid_names(backbone), output_size=7, sampling_ratio=2)
        if box_head is None:
            pooled_height, pooled_width = box_roi_pool.output_size
            box_head = TwoMLPHead(out_channels * pooled_height * pooled_width, representation_size)
        if box_predictor is None:
            box_predictor = FastRCNNPredictor(representation_size, num_classes)
        self.roi_heads = RoIHeads(
            box_roi_pool,
            box_head,
            box_predictor,
            box_fg_iou_thresh,
            box_bg_iou_thresh,
            box_batch_size_per_image,
            box_positive_fraction,
            bbox_reg_weights,
            box_score_thresh,
            box_nms_thresh,
            box_detections_per_img,
        )
        self.num_classes = num_classes
        self.reference_renames = nest_reference_renames(
            "backbone", getattr(backbone, "reference_renames", [])
        ) + nest_reference_renames("rpn", self.rpn.reference_renames)

    def forward(
        self, images: Tensor | Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training: the loss dict; evaluation: the detections of every image (module docstring)."""
        images = as_image_list(images)
        for image in images:  # the channels are checked against the normalisation by the transform
            check_image_batch(image.unsqueeze(0), image.shape[0], type(self).__name__, next(self.parameters()).dtype)
        original_sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
        if self.training:
            device, name = images[0].device, type(self).__name__
            targets = check_detection_targets(
                targets,
                len(images),
                self.num_classes,
                device=device,
                model_name=name,
                positive_size=True,
                background_label=0,
                mask_sizes=original_sizes,
            )
        else:
            targets = None
        batch, targets = self.transform(images, targets)
        features = self.backbone(batch.tensors)
        if isinstance(features, Tensor):
            features = {"0": features}
        proposals, proposal_losses = self.rpn(batch, features, targets)
        detections, detector_losses = self.roi_heads(features, proposals, batch.image_sizes, targets)
        if self.training:
            return {**detector_losses, **proposal_losses}
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes)


def _small_image_model(
    backbone: BackboneWithFPN,
    num_classes: int,
    anchor_sizes: Sequence[float],
    aspect_ratios: Sequence[float],
    kwargs: dict,
    model_class: type[FasterRCNN] | None = None,
) -> FasterRCNN:
    """Faster R-CNN (or ``model_class``, a subclass) with ``SMALL_IMAGE_DEFAULTS`` under ``kwargs``, and one
    anchor size per FPN level."""
    levels = len(pyramid_names(backbone)) + 1  # + the FPN's "pool" level
    if isinstance(anchor_sizes, (str, bytes)) or len(anchor_sizes) != levels:
        raise ValueError(f"anchor_sizes: expected one size per FPN level ({levels}), got {anchor_sizes!r}")
    kwargs.setdefault(
        "rpn_anchor_generator",
        AnchorGenerator(tuple((size,) for size in anchor_sizes), (tuple(aspect_ratios),) * levels),
    )
    return (model_class or FasterRCNN)(backbone, num_classes, **{**SMALL_IMAGE_DEFAULTS, **kwargs})


@register_model(
    task="detection",
    input_size=800,
    reference="torchvision:fasterrcnn_resnet50_fpn",
    reference_kwargs={"weights_backbone": None},  # nothing is downloaded
    # torchvision's builder without pretrained weights uses ordinary batch norm and trains every stage.
    reference_build_kwargs={"norm_layer": nn.BatchNorm2d, "trainable_backbone_layers": 5},
    paper=FASTER_RCNN_PAPER,
)
def faster_rcnn_resnet50_fpn(
    *,
    num_classes: int = 91,
    trainable_backbone_layers: int = 3,
    norm_layer: Callable[[int], nn.Module] = FrozenBatchNorm2d,
    **kwargs,
) -> FasterRCNN:
    """torchvision's ``fasterrcnn_resnet50_fpn`` (41,755,286 parameters at 91 classes): ResNet-50 with frozen
    batch norm and its first two stages frozen (its setting for a pretrained backbone), FPN, 800-1333 px input,
    ImageNet normalisation. ``norm_layer=nn.BatchNorm2d, trainable_backbone_layers=5`` is its setting without
    pretrained weights. Other keyword arguments go to :class:`FasterRCNN`."""
    backbone = resnet_fpn_backbone("resnet50", trainable_layers=trainable_backbone_layers, norm_layer=norm_layer)
    return FasterRCNN(backbone, num_classes, **kwargs)


@register_model(task="detection", input_size=512, paper=FASTER_RCNN_PAPER)
def faster_rcnn_resnet18_fpn(
    *,
    num_classes: int = 91,
    trainable_backbone_layers: int | None = None,
    norm_layer: Callable[[int], nn.Module] | None = None,
    anchor_sizes: Sequence[float] = SMALL_IMAGE_ANCHOR_SIZES,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
    fpn_out_channels: int = 256,
    **kwargs,
) -> FasterRCNN:
    """Faster R-CNN on a ResNet-18 FPN (C2..C5 + "pool") for small, normalised images (``SMALL_IMAGE_DEFAULTS``);
    the backbone is fully trainable with ordinary batch norm unless told otherwise. 17,668,998 parameters at
    11 classes."""
    backbone = backbone_with_fpn(
        "resnet18", trainable_layers=trainable_backbone_layers, norm_layer=norm_layer, out_channels=fpn_out_channels
    )
    return _small_image_model(backbone, num_classes, anchor_sizes, aspect_ratios, kwargs)


@register_model(task="detection", input_size=512, paper=FASTER_RCNN_PAPER)
def faster_rcnn_mobilenet_v3_large_fpn(
    *,
    num_classes: int = 91,
    trainable_backbone_layers: int | None = None,
    norm_layer: Callable[[int], nn.Module] | None = None,
    anchor_sizes: Sequence[float] = SMALL_IMAGE_ANCHOR_SIZES,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
    fpn_out_channels: int = 256,
    **kwargs,
) -> FasterRCNN:
    """Faster R-CNN on a MobileNetV3-Large FPN (its stride 4, 8, 16, 32 stages + "pool") for small, normalised
    images (``SMALL_IMAGE_DEFAULTS``). Unlike torchvision's ``fasterrcnn_mobilenet_v3_large_fpn`` (stride 16 and
    32 only, 15 anchors per cell) it has the ResNet variants' five levels and one anchor size per level.
    9,509,494 parameters at 11 classes."""
    backbone = backbone_with_fpn(
        "mobilenet_v3_large",
        trainable_layers=trainable_backbone_layers,
        norm_layer=norm_layer,
        out_channels=fpn_out_channels,
    )
    return _small_image_model(backbone, num_classes, anchor_sizes, aspect_ratios, kwargs)
