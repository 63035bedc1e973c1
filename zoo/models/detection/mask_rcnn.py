"""Mask R-CNN (He, Gkioxari, Dollár & Girshick, 2017, "Mask R-CNN") with an FPN backbone, drop-in for
torchvision's ``MaskRCNN``: Faster R-CNN (faster_rcnn.py) and a mask branch beside its box branch
(mask_head.py):

    RoI heads:  RoIAlign 7x7  → box head → K class logits + 4K offsets            (Faster R-CNN's)
                RoIAlign 14x14 → 4 x (3x3 conv 256, ReLU) → 2x2 deconv, ReLU → 1x1 conv: K masks of 28x28

Training adds ``loss_mask`` (per-class binary cross-entropy on the positive sampled proposals, targets by
RoIAlign of their ground-truth masks) to Faster R-CNN's losses; evaluation adds ``"masks" [D, 1, H, W]``,
the probabilities of each detection's class pasted into the input image. Targets need ``"masks"``,
``uint8``/``bool [K, H, W]`` of the image's size, beside the boxes and labels.

Parameters of ``mask_rcnn_resnet50_fpn`` at K = 91 classes (frozen batch norm in the backbone):

    Faster R-CNN (faster_rcnn.py)                  41,755,286
    mask head        4 (9 C² + C)                   2,360,320    (C = 256)
    mask predictor   (4 C + 1) D + (D + 1) K          285,787    (D = 256)
    total                                          44,401,393    (44,454,513 with ordinary batch norm)

RoIAlign is the paper's point: RoIPool's rounding of the box to the feature grid misaligns a 28x28 mask by
up to a stride, harmless for a class score but not for pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from zoo.layers.frozen_batch_norm import FrozenBatchNorm2d
from zoo.ops.poolers import MultiScaleRoIAlign
from zoo.registry import register_model
from zoo.weights import nest_reference_renames

from .backbone import backbone_with_fpn, resnet_fpn_backbone
from .faster_rcnn import (
    DEFAULT_ASPECT_RATIOS,
    FASTER_RCNN_PAPER,
    SMALL_IMAGE_ANCHOR_SIZES,
    FasterRCNN,
    _small_image_model,
    pyramid_names,
)
from .mask_head import MaskRCNNHeads, MaskRCNNPredictor

__all__ = ["MaskRCNN", "mask_rcnn_resnet18_fpn", "mask_rcnn_resnet50_fpn"]

MASK_RCNN_PAPER = "He et al. 2017, Mask R-CNN, arXiv:1703.06870; " + FASTER_RCNN_PAPER


class MaskRCNN(FasterRCNN):
    """Mask R-CNN on ``backbone``: :class:`FasterRCNN`'s arguments (given by keyword), and the mask branch.

    Args:
        mask_roi_pool: pools the RoIs for the mask head; default RoIAlign 14x14 (2x2 samples per bin) from the
            FPN levels the boxes are pooled from.
        mask_head: default :class:`MaskRCNNHeads` of ``mask_layers`` (4 x 256) 3x3 convolutions.
        mask_predictor: default :class:`MaskRCNNPredictor` from the head's last width to ``mask_dim_reduced``
            (256) channels and ``num_classes`` masks; give either ``num_classes`` or both predictors.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int | None = None,
        *,
        mask_roi_pool: MultiScaleRoIAlign | None = None,
        mask_head: nn.Module | None = None,
        mask_predictor: nn.Module | None = None,
        mask_layers: Sequence[int] = (256, 256, 256, 256),
        mask_dim_reduced: int = 256,
        **kwargs,
    ) -> None:
        if num_classes is not None and mask_predictor is not None:
            raise ValueError("give either num_classes (with the default mask_predictor) or a mask_predictor, not both")
        if num_classes is None and mask_predictor is None:
            raise ValueError("mask_predictor: needed when num_classes is not given (with a custom box_predictor)")
        super().__init__(backbone, num_classes, **kwargs)
        if mask_roi_pool is None:
            mask_roi_pool = MultiScaleRoIAlign(pyramid_names(backbone), output_size=14, sampling_ratio=2)
        if mask_head is None:
            mask_head = MaskRCNNHeads(backbone.out_channels, mask_layers)
        if mask_predictor is None:
            mask_predictor = MaskRCNNPredictor(mask_layers[-1], mask_dim_reduced, num_classes)
        # torchvision's places (and so its state_dict keys): the mask branch belongs to the RoI heads.
        self.roi_heads.mask_roi_pool = mask_roi_pool
        self.roi_heads.mask_head = mask_head
        self.roi_heads.mask_predictor = mask_predictor
        self.reference_renames = self.reference_renames + nest_reference_renames(
            "roi_heads.mask_head", getattr(mask_head, "reference_renames", [])
        )


@register_model(
    task="detection",
    input_size=800,
    reference="torchvision:maskrcnn_resnet50_fpn",
    reference_kwargs={"weights_backbone": None},  # nothing is downloaded
    # torchvision's builder without pretrained weights uses ordinary batch norm and trains every stage.
    reference_build_kwargs={"norm_layer": nn.BatchNorm2d, "trainable_backbone_layers": 5},
    paper=MASK_RCNN_PAPER,
)
def mask_rcnn_resnet50_fpn(
    *,
    num_classes: int = 91,
    trainable_backbone_layers: int = 3,
    norm_layer: Callable[[int], nn.Module] = FrozenBatchNorm2d,
    **kwargs,
) -> MaskRCNN:
    """torchvision's ``maskrcnn_resnet50_fpn`` (44,401,393 parameters at 91 classes): ResNet-50 with frozen
    batch norm and its first two stages frozen (its setting for a pretrained backbone), FPN, 800-1333 px input,
    ImageNet normalisation. ``norm_layer=nn.BatchNorm2d, trainable_backbone_layers=5`` is its setting without
    pretrained weights (44,454,513). Other keyword arguments go to :class:`MaskRCNN`."""
    backbone = resnet_fpn_backbone("resnet50", trainable_layers=trainable_backbone_layers, norm_layer=norm_layer)
    return MaskRCNN(backbone, num_classes, **kwargs)


@register_model(task="detection", input_size=512, paper=MASK_RCNN_PAPER)
def mask_rcnn_resnet18_fpn(
    *,
    num_classes: int = 91,
    trainable_backbone_layers: int | None = None,
    norm_layer: Callable[[int], nn.Module] | None = None,
    anchor_sizes: Sequence[float] = SMALL_IMAGE_ANCHOR_SIZES,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
    fpn_out_channels: int = 256,
    **kwargs,
) -> MaskRCNN:
    """Mask R-CNN on a ResNet-18 FPN for small, normalised images: ``faster_rcnn_resnet18_fpn``'s settings
    (``SMALL_IMAGE_DEFAULTS``) and torchvision's mask branch (4 x 256 convolutions, 28x28 masks)."""
    backbone = backbone_with_fpn(
        "resnet18", trainable_layers=trainable_backbone_layers, norm_layer=norm_layer, out_channels=fpn_out_channels
    )
    return _small_image_model(backbone, num_classes, anchor_sizes, aspect_ratios, kwargs, MaskRCNN)
