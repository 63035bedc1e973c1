"""RetinaNet (Lin, Goyal, Girshick, He & Dollár, 2017, "Focal Loss for Dense Object Detection"), drop-in for
torchvision's ``RetinaNet``: a one-stage detector whose sigmoid focal loss lets every anchor of every level train
the classifier without the easy negatives swamping it.

    images → transform (normalise, resize, pad: transform.py) → ResNet C3..C5 → FPN P3..P5, P6 = conv3×3/2(P5),
           P7 = conv3×3/2(ReLU(P6))       (torchvision's v1: P6 from the FPN's P5, not from C5 as in the paper)
           → at every level, shared:  4 × (conv3×3 + ReLU) → conv3×3 to A·K class logits
                                      4 × (conv3×3 + ReLU) → conv3×3 to A·4 box offsets (BoxCoder, unit weights)
           → detections, scaled back to the input size

Anchors: A = 9 per cell, three octave scales ``int(s · 2^(k/3))``, k = 0, 1, 2, times the aspect ratios 0.5, 1, 2,
on base sizes s = 32..512 for P3..P7 (:class:`~zoo.ops.anchors.AnchorGenerator`). The class logits start at the
prior probability π = 0.01 (bias −log((1 − π) / π)), every other weight from N(0, 0.01²), biases zero (§4.1).

Training (``{"classification", "bbox_regression"}``): anchors matched by IoU (``Matcher(0.5, 0.4)``, and every
ground-truth box's best anchors positive whatever their IoU); per image, with N_fg positives,

    classification   = 1 / max(1, N_fg) · Σ_{anchors not between the thresholds} Σ_k FL(x_k, [k = label])
    bbox_regression  = 1 / max(1, N_fg) · Σ_{positive anchors} |t − t*|₁          (torchvision's v1: L1)

each averaged over the images; FL is ``zoo.ops.losses.sigmoid_focal_loss`` (α = 0.25, γ = 2).
Evaluation: scores σ(x); per level the ``topk_candidates`` best (anchor, class) pairs above ``score_thresh``,
decoded and clipped to the image; class-wise NMS at ``nms_thresh`` and the ``detections_per_img`` best
(:mod:`~zoo.models.detection.dense`). Labels index the K class logits; 0 is the background, which no target may
carry (as for Faster R-CNN; torchvision's COCO RetinaNet keeps the 91 COCO slots, 0 unused).

Parameters of ``retinanet_resnet50_fpn`` at K = 91 (C = 256 channels, A = 9 anchors, frozen batch norm):

    backbone + FPN (C3..C5 laterals, P6, P7)               27,323,584
    classification head   4 (9 C² + C) + (9 C + 1) A K      4,248,115
    regression head       4 (9 C² + C) + (9 C + 1) 4 A      2,443,300
    total                                                  34,014,999   (34,068,119 with ordinary batch norm)

The small-image builder ``retinanet_resnet18_fpn`` is for data the pipeline has already normalised and sized
(zoo's 64-128 px synthetic scenes): no normalisation or resizing, base anchor sizes 16..256 (Faster R-CNN's
``SMALL_IMAGE_ANCHOR_SIZES``), torchvision's other settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

import zoo.models.resnet  # noqa: F401  (registers the ResNet backbones)
from zoo.layers.conv_norm_act import ConvNormAct
from zoo.layers.fpn import LastLevelP6P7
from zoo.layers.frozen_batch_norm import FrozenBatchNorm2d
from zoo.models.base import check_image_batch
from zoo.ops.anchors import AnchorGenerator
from zoo.ops.box_coder import BoxCoder
from zoo.ops.boxes import box_iou
from zoo.ops.losses import sigmoid_focal_loss, smooth_l1_loss
from zoo.ops.matcher import Matcher
from zoo.registry import TORCHVISION_DOCS, Published, register_model
from zoo.weights import nest_reference_renames

from .backbone import BackboneWithFPN, backbone_with_fpn, resnet_fpn_backbone
from .batching import as_image_list
from .dense import clip_to_images, flatten_levels, select_detections, top_candidates
from .faster_rcnn import DEFAULT_ASPECT_RATIOS, SMALL_IMAGE_ANCHOR_SIZES
from .targets import check_detection_targets
from .transform import IMAGENET_MEAN, IMAGENET_STD, GeneralizedRCNNTransform

__all__ = [
    "PRIOR_PROBABILITY",
    "SMALL_IMAGE_DEFAULTS",
    "RetinaNet",
    "RetinaNetClassificationHead",
    "RetinaNetHead",
    "RetinaNetRegressionHead",
    "conv_tower",
    "octave_anchor_sizes",
    "prediction_conv",
    "retinanet_resnet18_fpn",
    "retinanet_resnet50_fpn",
    "small_image_backbone",
]

RETINANET_PAPER = "Lin et al. 2017, Focal Loss for Dense Object Detection, arXiv:1708.02002"
PRIOR_PROBABILITY = 0.01
DEFAULT_BASE_SIZES = (32, 64, 128, 256, 512)  # P3..P7: four times each level's stride


def octave_anchor_sizes(base_sizes: Sequence[float]) -> tuple[tuple[int, ...], ...]:
    """Per level, the three octave scales ``int(s · 2^(k/3))``, k = 0, 1, 2, of its base size s (truncated to
    integers, as torchvision does: 32 → (32, 40, 50))."""
    if isinstance(base_sizes, (str, bytes)) or not all(isinstance(s, (int, float)) and s > 0 for s in base_sizes):
        raise ValueError(f"base_sizes: expected positive numbers, one per pyramid level, got {base_sizes!r}")
    return tuple(tuple(int(size * 2 ** (octave / 3.0)) for octave in range(3)) for size in base_sizes)


def _check_count(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


def _check_fraction(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    return float(value)


def conv_tower(
    channels: int, num_convs: int, norm_layer: Callable[[int], nn.Module] | None = None, bias: bool | None = None
) -> nn.Sequential:
    """``num_convs`` × (conv3×3 → norm → ReLU), ``channels`` wide, weights from N(0, 0.01²) and zero biases: the
    trunk of every RetinaNet / FCOS branch. ``bias`` defaults to torchvision's rule (a bias only without a norm).
    params = n (9 C² + C [bias] + 2 C [norm])."""
    _check_count(channels, "channels")
    _check_count(num_convs, "num_convs", 0)
    bias = norm_layer is None if bias is None else bias
    tower = nn.Sequential(
        *(ConvNormAct(channels, channels, 3, bias=bias, norm_layer=norm_layer) for _ in range(num_convs))
    )
    for block in tower:
        nn.init.normal_(block.conv.weight, std=0.01)
        if block.conv.bias is not None:
            nn.init.zeros_(block.conv.bias)
    return tower


def prediction_conv(channels: int, outputs: int, bias: float = 0.0) -> nn.Conv2d:
    """The 3×3 conv (with bias) that ends a branch: weights from N(0, 0.01²), the bias at ``bias``."""
    conv = nn.Conv2d(channels, outputs, 3, padding=1)
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.constant_(conv.bias, bias)
    return conv


# torchvision's key → ours: its tower block is a Conv2dNormActivation (a Sequential: 0 conv, 1 norm), before
# version 2 of the heads a flat Sequential of convs and ReLUs (conv i at index 2 i); ours is a ConvNormAct.
def _tower_renames(num_convs: int) -> list[tuple[str, str]]:
    old = [(rf"^conv\.{2 * index}\.(weight|bias)$", rf"conv.{index}.conv.\1") for index in range(num_convs)]
    return [(r"^conv\.(\d+)\.0\.", r"conv.\1.conv."), (r"^conv\.(\d+)\.1\.", r"conv.\1.bn."), *old]


class RetinaNetClassificationHead(nn.Module):
    """Tower → conv3×3 to ``num_anchors · num_classes`` logits per cell, the bias at the prior probability π.

    ``forward(features)`` returns one map ``[N, A·K, H_l, W_l]`` per level (channel ``a·K + k``). Parameters:
    n (9 C² + C) + (9 C + 1) A K without a norm (n = ``num_convs``)."""

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        num_classes: int,
        prior_probability: float = PRIOR_PROBABILITY,
        norm_layer: Callable[[int], nn.Module] | None = None,
        *,
        num_convs: int = 4,
        conv_bias: bool | None = None,
    ) -> None:
        super().__init__()
        if isinstance(prior_probability, bool) or not 0 < prior_probability < 1:
            raise ValueError(f"prior_probability: expected a number in (0, 1), got {prior_probability!r}")
        self.num_classes = _check_count(num_classes, "num_classes")
        self.num_anchors = _check_count(num_anchors, "num_anchors")
        self.conv = conv_tower(in_channels, num_convs, norm_layer, conv_bias)
        prior_logit = -math.log((1 - prior_probability) / prior_probability)
        self.cls_logits = prediction_conv(in_channels, num_anchors * num_classes, prior_logit)
        self.reference_renames = _tower_renames(num_convs)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        return [self.cls_logits(self.conv(feature)) for feature in features]  # a loop over the few levels


class RetinaNetRegressionHead(nn.Module):
    """Tower → conv3×3 to ``4 · num_anchors`` box offsets per cell (``BoxCoder`` with unit weights).

    ``forward(features)`` returns one map ``[N, A·4, H_l, W_l]`` per level. Parameters: n (9 C² + C) +
    (9 C + 1) 4 A without a norm."""

    def __init__(
        self, in_channels: int, num_anchors: int, norm_layer: Callable[[int], nn.Module] | None = None, *, num_convs=4
    ) -> None:
        super().__init__()
        self.num_anchors = _check_count(num_anchors, "num_anchors")
        self.conv = conv_tower(in_channels, num_convs, norm_layer)
        self.bbox_reg = prediction_conv(in_channels, 4 * num_anchors)
        self.reference_renames = _tower_renames(num_convs)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        return [self.bbox_reg(self.conv(feature)) for feature in features]


class RetinaNetHead(nn.Module):
    """The classification and regression branches, shared by every level; ``forward(features)`` returns
    ``{"cls_logits": [N, P, K], "bbox_regression": [N, P, 4]}``, P = Σ_l H_l W_l A in the anchors' order."""

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        num_classes: int,
        norm_layer: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.classification_head = RetinaNetClassificationHead(
            in_channels, num_anchors, num_classes, norm_layer=norm_layer
        )
        self.regression_head = RetinaNetRegressionHead(in_channels, num_anchors, norm_layer=norm_layer)
        self.reference_renames = nest_reference_renames(
            "classification_head", self.classification_head.reference_renames
        ) + nest_reference_renames("regression_head", self.regression_head.reference_renames)

    def forward(self, features: Sequence[Tensor]) -> dict[str, Tensor]:
        return {
            "cls_logits": flatten_levels(self.classification_head(features), self.classification_head.num_classes),
            "bbox_regression": flatten_levels(self.regression_head(features), 4),
        }


class RetinaNet(nn.Module):
    """RetinaNet on ``backbone`` (a module with ``out_channels`` returning named feature maps, finest first).

    Arguments and defaults are torchvision's ``RetinaNet``'s (module docstring), except: ``min_size=None`` turns
    resizing off and ``image_mean=image_std=None`` normalisation off. ``forward(images, targets=None)``: a loss
    dict in training, ``[{"boxes" [D, 4] xyxy in input pixels, "scores" [D], "labels" [D] int64}]`` in evaluation.

    The one-stage path (transform, backbone, head, anchors, candidate selection) is shared with FCOS, which
    overrides the defaults (:meth:`default_anchor_generator`, :meth:`default_head`), the assignment
    (:meth:`match`), :meth:`compute_loss`, :meth:`class_scores` and :meth:`decode_boxes`.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        min_size: int | Sequence[int] | None = 800,
        max_size: int | None = 1333,
        image_mean: Sequence[float] | None = IMAGENET_MEAN,
        image_std: Sequence[float] | None = IMAGENET_STD,
        size_divisible: int = 32,
        anchor_generator: AnchorGenerator | None = None,
        head: nn.Module | None = None,
        proposal_matcher: Matcher | None = None,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 300,
        fg_iou_thresh: float = 0.5,
        bg_iou_thresh: float = 0.4,
        topk_candidates: int = 1000,
    ) -> None:
        super().__init__()
        out_channels = getattr(backbone, "out_channels", None)
        if isinstance(out_channels, bool) or not isinstance(out_channels, int):
            raise ValueError("backbone: expected a module with an int `out_channels` (the width of every level)")
        self.num_classes = _check_count(num_classes, "num_classes (background + object classes)", 2)
        if anchor_generator is None:
            anchor_generator = self.default_anchor_generator()
        if not isinstance(anchor_generator, AnchorGenerator):
            raise TypeError(f"anchor_generator: expected an AnchorGenerator, got {type(anchor_generator).__name__}")
        self.transform = GeneralizedRCNNTransform(min_size, max_size, image_mean, image_std, size_divisible)
        self.backbone = backbone
        self.anchor_generator = anchor_generator
        self.head = (
            self.default_head(out_channels, anchor_generator.num_anchors_per_location()[0]) if head is None else head
        )
        self.proposal_matcher = (
            Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
            if proposal_matcher is None
            else proposal_matcher
        )
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.score_thresh = _check_fraction(score_thresh, "score_thresh")
        self.nms_thresh = _check_fraction(nms_thresh, "nms_thresh")
        self.detections_per_img = _check_count(detections_per_img, "detections_per_img")
        self.topk_candidates = _check_count(topk_candidates, "topk_candidates")
        self.reference_renames = nest_reference_renames(
            "backbone", getattr(backbone, "reference_renames", [])
        ) + nest_reference_renames("head", getattr(self.head, "reference_renames", []))

    # --- the parts a subclass changes ---------------------------------------------------------------------------

    @staticmethod
    def default_anchor_generator() -> AnchorGenerator:
        sizes = octave_anchor_sizes(DEFAULT_BASE_SIZES)
        return AnchorGenerator(sizes, (DEFAULT_ASPECT_RATIOS,) * len(sizes))

    def default_head(self, in_channels: int, num_anchors: int) -> nn.Module:
        return RetinaNetHead(in_channels, num_anchors, self.num_classes)

    def class_scores(self, head_outputs: dict[str, Tensor]) -> Tensor:
        """``[N, P, K]`` scores of every (anchor, class) pair: σ(logit)."""
        return head_outputs["cls_logits"].sigmoid()

    def decode_boxes(self, codes: Tensor, anchors: Tensor) -> Tensor:
        """Boxes ``[M, 4]`` from the head's ``codes [M, 4]`` at their ``anchors [M, 4]``."""
        return self.box_coder.decode_single(codes, anchors)

    def match(self, boxes: Tensor, anchors: Tensor, level_sizes: Sequence[int]) -> Tensor:
        """The matched ground-truth index of every anchor ``[P]``: -1 background, -2 ignored (between the IoU
        thresholds)."""
        if boxes.numel() == 0:
            return torch.full((len(anchors),), Matcher.BELOW_LOW_THRESHOLD, dtype=torch.int64, device=anchors.device)
        return self.proposal_matcher(box_iou(boxes, anchors))

    def compute_loss(
        self,
        targets: Sequence[dict[str, Tensor]],
        head_outputs: dict[str, Tensor],
        anchors: Sequence[Tensor],
        level_sizes: Sequence[int],
    ) -> dict[str, Tensor]:
        """The focal classification loss and the L1 box loss (module docstring), averaged over the images."""
        classification, regression = [], []
        # A loop over the images: each has its own number of ground-truth boxes.
        for target, logits, codes, image_anchors in zip(
            targets, head_outputs["cls_logits"], head_outputs["bbox_regression"], anchors, strict=True
        ):
            matched = self.match(target["boxes"], image_anchors, level_sizes)
            foreground = matched >= 0
            num_foreground = foreground.sum().clamp(min=1)
            class_targets = torch.zeros_like(logits)
            class_targets[foreground, target["labels"][matched[foreground]]] = 1.0
            valid = matched != Matcher.BETWEEN_THRESHOLDS
            focal = sigmoid_focal_loss(logits[valid], class_targets[valid], reduction="sum")
            classification.append(focal / num_foreground)
            offsets = self.box_coder.encode_single(target["boxes"][matched[foreground]], image_anchors[foreground])
            l1 = smooth_l1_loss(codes[foreground], offsets, beta=0.0, reduction="sum")
            regression.append(l1 / num_foreground)
        return {
            "classification": torch.stack(classification).mean(),
            "bbox_regression": torch.stack(regression).mean(),
        }

    # --- the shared path ----------------------------------------------------------------------------------------

    def forward(
        self, images: Tensor | Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training: the loss dict; evaluation: the detections of every image (class docstring)."""
        images = as_image_list(images)
        name = type(self).__name__
        for image in images:  # the channels are checked against the normalisation by the transform
            check_image_batch(image.unsqueeze(0), image.shape[0], name, next(self.parameters()).dtype)
        if self.training:
            targets = check_detection_targets(
                targets,
                len(images),
                self.num_classes,
                device=images[0].device,
                model_name=name,
                positive_size=True,
                background_label=0,
            )
        else:
            targets = None
        original_sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
        batch, targets = self.transform(images, targets)
        features = self.backbone(batch.tensors)
        feature_maps = [features] if isinstance(features, Tensor) else list(features.values())
        head_outputs = self.head(feature_maps)
        anchors = self.anchor_generator(batch, feature_maps)
        anchors_per_cell = head_outputs["cls_logits"].shape[1] // sum(f.shape[-2] * f.shape[-1] for f in feature_maps)
        level_sizes = [f.shape[-2] * f.shape[-1] * anchors_per_cell for f in feature_maps]
        if self.training:
            return self.compute_loss(targets, head_outputs, anchors, level_sizes)
        detections = self.postprocess_detections(head_outputs, anchors, level_sizes, batch.image_sizes)
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes)

    def postprocess_detections(
        self,
        head_outputs: dict[str, Tensor],
        anchors: Sequence[Tensor],
        level_sizes: Sequence[int],
        image_sizes: Sequence[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """Per level the best candidates above the threshold, decoded and clipped to their image; class-wise NMS;
        the best ``detections_per_img`` of each image (module docstring)."""
        scores = self.class_scores(head_outputs)
        candidates = top_candidates(scores, self.topk_candidates, self.score_thresh, level_sizes)
        codes = head_outputs["bbox_regression"][candidates.image, candidates.prediction]
        boxes = self.decode_boxes(codes, torch.stack(list(anchors))[candidates.image, candidates.prediction])
        boxes = clip_to_images(boxes, candidates.image, image_sizes)
        return select_detections(
            boxes, candidates, len(image_sizes), scores.shape[-1], self.nms_thresh, self.detections_per_img
        )


# --- builders ---------------------------------------------------------------------------------------------------


@register_model(
    task="detection",
    input_size=800,
    reference="torchvision:retinanet_resnet50_fpn",
    reference_kwargs={"weights_backbone": None},  # nothing is downloaded
    # torchvision's builder without pretrained weights uses ordinary batch norm and trains every stage.
    reference_build_kwargs={"norm_layer": nn.BatchNorm2d, "trainable_backbone_layers": 5},
    paper=RETINANET_PAPER,
    published=Published(34_014_999, 151.54, TORCHVISION_DOCS, 0.05, True),
)
def retinanet_resnet50_fpn(
    *,
    num_classes: int = 91,
    trainable_backbone_layers: int = 3,
    norm_layer: Callable[[int], nn.Module] = FrozenBatchNorm2d,
    **kwargs,
) -> RetinaNet:
    """torchvision's ``retinanet_resnet50_fpn`` (34,014,999 parameters at 91 classes): ResNet-50 with frozen batch
    norm and its first two stages frozen (its setting for a pretrained backbone), C3..C5 + P6, P7 from P5, 800-1333
    px input, ImageNet normalisation. ``norm_layer=nn.BatchNorm2d, trainable_backbone_layers=5`` is its setting
    without pretrained weights (34,068,119). Other keyword arguments go to :class:`RetinaNet`."""
    backbone = resnet_fpn_backbone(
        "resnet50",
        trainable_layers=trainable_backbone_layers,
        returned_layers=(2, 3, 4),
        extra_blocks=LastLevelP6P7(256, 256),
        norm_layer=norm_layer,
    )
    return RetinaNet(backbone, num_classes, **kwargs)


# Builder defaults for small, already normalised images (module docstring).
SMALL_IMAGE_DEFAULTS = {"min_size": None, "max_size": None, "image_mean": None, "image_std": None}


def small_image_backbone(
    name: str, trainable_layers: int | None, norm_layer: Callable[[int], nn.Module] | None, out_channels: int
) -> BackboneWithFPN:
    """A registered ResNet's C3..C5 (strides 8, 16, 32) with an FPN and P6, P7 from P5, ``out_channels`` wide."""
    return backbone_with_fpn(
        name,
        out_indices=(1, 2, 3),
        trainable_layers=trainable_layers,
        norm_layer=norm_layer,
        out_channels=out_channels,
        extra_blocks=LastLevelP6P7(out_channels, out_channels),
    )


@register_model(task="detection", input_size=512, paper=RETINANET_PAPER)
def retinanet_resnet18_fpn(
    *,
    num_classes: int = 91,
    trainable_backbone_layers: int | None = None,
    norm_layer: Callable[[int], nn.Module] | None = None,
    anchor_sizes: Sequence[float] = SMALL_IMAGE_ANCHOR_SIZES,
    aspect_ratios: Sequence[float] = DEFAULT_ASPECT_RATIOS,
    fpn_out_channels: int = 256,
    **kwargs,
) -> RetinaNet:
    """RetinaNet on a ResNet-18 FPN (C3..C5 + P6, P7) for small, normalised images: no resizing or normalisation,
    base anchor sizes ``anchor_sizes`` (one per level, three octave scales each); the backbone is fully trainable
    with ordinary batch norm unless told otherwise. 19,388,871 parameters at 11 classes."""
    if isinstance(anchor_sizes, (str, bytes)) or len(anchor_sizes) != 5:
        raise ValueError(f"anchor_sizes: expected one base size per level P3..P7 (5), got {anchor_sizes!r}")
    backbone = small_image_backbone("resnet18", trainable_backbone_layers, norm_layer, fpn_out_channels)
    sizes = octave_anchor_sizes(anchor_sizes)
    kwargs.setdefault("anchor_generator", AnchorGenerator(sizes, (tuple(aspect_ratios),) * len(sizes)))
    return RetinaNet(backbone, num_classes, **{**SMALL_IMAGE_DEFAULTS, **kwargs})
