"""SSD (Liu et al., 2016, "SSD: Single Shot MultiBox Detector") and SSDlite (Sandler et al., 2018, sec. 6.2;
Howard et al., 2019, sec. 6.3), drop-in for torchvision's ``SSD``, ``ssd300_vgg16`` and
``ssdlite320_mobilenet_v3_large``:

    images → transform: normalise, stretch to the fixed size (300×300 / 320×320)  (transform.py)
           → backbone (ssd_backbone.py): six maps "0".."5", finest first
           → head: per map a 3×3 conv (SSDlite: 3×3 depthwise-BN-ReLU6 + 1×1) to A_k·K class logits and A_k·4
             offsets, A_k default boxes per cell (zoo.ops.default_boxes)
           → detections, scaled back to the input size

Training (``{"bbox_regression", "classification"}``, to be summed), per image, with P default boxes d_i:

    matching    d_i is positive for the ground truth g of highest IoU when IoU ≥ 0.5, and every g also takes its
                best d_i (zoo.ops.matcher.SSDMatcher); the others are background (label 0)
    regression  Σ_{i positive} smooth-L1(t_i − encode(g_i, d_i)),  R-CNN offsets with weights (10, 10, 5, 5)
    mining      of the background boxes only the 3·N_pos of highest cross-entropy count (hard negatives;
                3 = (1 − 0.25) / 0.25 from ``positive_fraction``)
    classes     Σ_{positive} CE + Σ_{hard negatives} CE
    both losses are summed over the batch and divided by max(1, Σ N_pos)

Evaluation: softmax over the K classes, boxes decoded and clipped to the image, per class the ``topk_candidates``
best boxes above ``score_thresh``, class-wise NMS at ``nms_thresh``, the ``detections_per_img`` best
(SSD300: 0.01, 400, 0.45, 200; SSDlite: 0.001, 300, 0.55, 300). Labels index the classifier outputs; 0 is the
background.

Parameters at K = 91 classes:

    ssd300_vgg16        VGG-16 conv1_1..conv5_3                          14,714,688
                        L2 norm γ                                               512
                        fc6 9·512·1024 + 1024, fc7 1024² + 1024           5,769,216
                        extras (ssd_backbone.py)                          2,459,520
                        head Σ_k (9·C_k + 1)·A_k·(K + 4)                 12,697,890   (A = 4, 6, 6, 6, 4, 4)
                        total                                            35,641,826
    ssdlite320_mobilenet_v3_large
                        MobileNetV3-Large, reduced tail, no classifier    1,620,512
                        extras                                              452,160
                        head (ssdlite_head), A = 6 everywhere             1,367,388
                        total                                             3,440,060

A model built for one input size refuses another: the SSD300 default boxes sit ``steps`` pixels apart on maps of
⌈300 / step⌉ cells, which another size would not give (zoo.ops.default_boxes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.models.base import check_image_batch
from zoo.ops.box_coder import BoxCoder
from zoo.ops.boxes import box_iou, clip_boxes_to_image
from zoo.ops.default_boxes import DefaultBoxGenerator
from zoo.ops.losses import smooth_l1_loss
from zoo.ops.matcher import SSDMatcher
from zoo.registry import TORCHVISION_DOCS, Published, register_model

from .batching import as_image_list
from .dense import Candidates, flatten_levels, select_detections
from .ssd_backbone import SSDLITE_NORM, SSDLiteMobileNetV3Backbone, SSDVGGBackbone, backbone_renames, init_convs
from .targets import check_detection_targets
from .transform import IMAGENET_MEAN, IMAGENET_STD, GeneralizedRCNNTransform

__all__ = ["SSD", "SSDHead", "multibox_loss", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large"]

SSD_PAPER = "Liu et al. 2016, SSD: Single Shot MultiBox Detector, arXiv:1512.02325"
SSDLITE_PAPER = "Sandler et al. 2018, MobileNetV2, arXiv:1801.04381 (SSDlite); Howard et al. 2019, arXiv:1905.02244"

# R-CNN offsets in the SSD paper's variances (0.1, 0.1, 0.2, 0.2) = 1 / weights.
SSD_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


class SSDHead(nn.Module):
    """Per feature map, a class predictor (A_k·K channels) and a box predictor (A_k·4); ``forward(maps)`` returns
    ``(class logits [N, P, K], offsets [N, P, 4])`` flattened as the default boxes are (map, row, column, box)."""

    def __init__(self, classification: Sequence[nn.Module], regression: Sequence[nn.Module], num_classes: int) -> None:
        super().__init__()
        if len(classification) != len(regression):
            raise ValueError(
                f"expected one class and one box predictor per map, got {len(classification)}, {len(regression)}"
            )
        self.classification = nn.ModuleList(classification)
        self.regression = nn.ModuleList(regression)
        self.num_classes = num_classes

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        if len(features) != len(self.classification):
            raise ValueError(f"expected {len(self.classification)} feature maps, got {len(features)}")
        logits = [predict(x) for predict, x in zip(self.classification, features, strict=True)]
        offsets = [predict(x) for predict, x in zip(self.regression, features, strict=True)]
        return flatten_levels(logits, self.num_classes), flatten_levels(offsets, 4)


def ssd_head(in_channels: Sequence[int], num_anchors: Sequence[int], num_classes: int) -> SSDHead:
    """SSD300's head: a 3×3 conv per map, Xavier-uniform weights and zero biases as torchvision's.
    Parameters: Σ_k (9·C_k + 1)·A_k·(K + 4)."""

    def convs(width: int) -> list[nn.Module]:
        return [nn.Conv2d(c, a * width, 3, padding=1) for c, a in zip(in_channels, num_anchors, strict=True)]

    head = SSDHead(convs(num_classes), convs(4), num_classes)
    init_convs(head, nn.init.xavier_uniform_)
    return head


def ssdlite_head(
    in_channels: Sequence[int], num_anchors: Sequence[int], num_classes: int, norm_layer: Callable[[int], nn.Module]
) -> SSDHead:
    """SSDlite's head: per map a 3×3 depthwise conv-BN-ReLU6 then a 1×1 conv, weights N(0, 0.03²).
    Parameters: Σ_k (9·C_k + 2·C_k) + (C_k + 1)·A_k·W per predictor, W = K or 4."""

    def blocks(width: int) -> list[nn.Module]:
        return [
            nn.Sequential(
                ConvNormAct(c, c, 3, groups=c, norm_layer=norm_layer, act_layer=nn.ReLU6), nn.Conv2d(c, a * width, 1)
            )
            for c, a in zip(in_channels, num_anchors, strict=True)
        ]

    head = SSDHead(blocks(num_classes), blocks(4), num_classes)
    init_convs(head, lambda weight: nn.init.normal_(weight, 0.0, 0.03))
    return head


def hard_negatives(cls_loss: Tensor, positive: Tensor, neg_to_pos_ratio: float) -> Tensor:
    """The mask ``[N, P]`` of each image's ``neg_to_pos_ratio · N_pos`` background boxes of highest loss."""
    negative_loss = cls_loss.clone()
    negative_loss[positive] = -float("inf")  # a positive never counts as a negative
    rank = negative_loss.sort(dim=1, descending=True).indices.sort(dim=1).indices
    return rank < neg_to_pos_ratio * positive.sum(dim=1, keepdim=True)


def multibox_loss(
    cls_logits: Tensor,
    bbox_regression: Tensor,
    anchors: Sequence[Tensor],
    targets: Sequence[dict[str, Tensor]],
    matcher: SSDMatcher,
    box_coder: BoxCoder,
    neg_to_pos_ratio: float,
) -> dict[str, Tensor]:
    """SSD's loss (module docstring): ``{"bbox_regression", "classification"}`` from the flattened head outputs
    ``[N, P, K]`` and ``[N, P, 4]``, the default boxes of each image and its targets."""
    box_losses, class_targets, num_positive = [], [], 0
    for logits, offsets, boxes, target in zip(cls_logits, bbox_regression, anchors, targets, strict=True):
        gt_boxes, labels = target["boxes"], target["labels"]
        if len(gt_boxes) == 0:
            matched = torch.full((len(boxes),), -1, dtype=torch.int64, device=boxes.device)
        else:
            matched = matcher(box_iou(gt_boxes, boxes))
        foreground = torch.where(matched >= 0)[0]
        matched_gt = matched[foreground]
        num_positive += len(foreground)
        encoded = box_coder.encode_single(gt_boxes[matched_gt], boxes[foreground])
        box_losses.append(smooth_l1_loss(offsets[foreground], encoded, reduction="sum"))
        classes = torch.zeros(len(logits), dtype=labels.dtype, device=labels.device)
        classes[foreground] = labels[matched_gt]
        class_targets.append(classes)
    class_targets = torch.stack(class_targets)
    num_classes = cls_logits.shape[-1]
    cls_loss = F.cross_entropy(cls_logits.reshape(-1, num_classes), class_targets.reshape(-1), reduction="none")
    cls_loss = cls_loss.view(class_targets.shape)
    positive = class_targets > 0
    negative = hard_negatives(cls_loss, positive, neg_to_pos_ratio)
    normaliser = max(1, num_positive)
    return {
        "bbox_regression": torch.stack(box_losses).sum() / normaliser,
        "classification": (cls_loss[positive].sum() + cls_loss[negative].sum()) / normaliser,
    }


def _check_fraction(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name}: expected a number in (0, 1), got {value!r}")


class SSD(nn.Module):
    """SSD on ``backbone`` (a module with ``out_channels``, one per map, returning named maps), torchvision's
    arguments and defaults (module docstring). ``size`` is the (width, height) every image is stretched to."""

    def __init__(
        self,
        backbone: nn.Module,
        anchor_generator: DefaultBoxGenerator,
        size: tuple[int, int],
        num_classes: int,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        head: nn.Module | None = None,
        score_thresh: float = 0.01,
        nms_thresh: float = 0.45,
        detections_per_img: int = 200,
        iou_thresh: float = 0.5,
        topk_candidates: int = 400,
        positive_fraction: float = 0.25,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes: expected an int >= 2 (background + object classes), got {num_classes!r}")
        out_channels = getattr(backbone, "out_channels", None)
        if head is None:
            if not isinstance(out_channels, Sequence) or len(out_channels) != len(anchor_generator.aspect_ratios):
                raise ValueError(
                    f"backbone.out_channels: expected one width per aspect-ratio list "
                    f"({len(anchor_generator.aspect_ratios)}), got {out_channels!r}"
                )
            head = ssd_head(out_channels, anchor_generator.num_anchors_per_location(), num_classes)
        for value, name in ((nms_thresh, "nms_thresh"), (iou_thresh, "iou_thresh")):
            _check_fraction(value, name)
        _check_fraction(positive_fraction, "positive_fraction")
        for value, name in ((detections_per_img, "detections_per_img"), (topk_candidates, "topk_candidates")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        self.backbone = backbone
        self.anchor_generator = anchor_generator
        self.head = head
        self.box_coder = BoxCoder(SSD_BOX_WEIGHTS)
        self.matcher = SSDMatcher(iou_thresh)
        self.transform = GeneralizedRCNNTransform(
            min(size), max(size), image_mean or IMAGENET_MEAN, image_std or IMAGENET_STD, 1, fixed_size=tuple(size)
        )
        self.num_classes = num_classes
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.detections_per_img, self.topk_candidates = detections_per_img, topk_candidates
        self.neg_to_pos_ratio = (1.0 - positive_fraction) / positive_fraction
        self.reference_renames = backbone_renames(backbone) + [
            (r"^head\.classification_head\.module_list\.(\d+)\.0\.0\.", r"head.classification.\1.0.conv."),
            (r"^head\.classification_head\.module_list\.(\d+)\.0\.1\.", r"head.classification.\1.0.bn."),
            (r"^head\.regression_head\.module_list\.(\d+)\.0\.0\.", r"head.regression.\1.0.conv."),
            (r"^head\.regression_head\.module_list\.(\d+)\.0\.1\.", r"head.regression.\1.0.bn."),
            (r"^head\.classification_head\.module_list\.", "head.classification."),
            (r"^head\.regression_head\.module_list\.", "head.regression."),
        ]

    def convert_reference_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """torchvision's SSD backbone keys moved to those of the classifier they came from (ssd_backbone.py)."""
        key_of = getattr(self.backbone, "reference_key", None)
        if key_of is None:
            return dict(state_dict)
        prefix = "backbone."
        return {
            prefix + key_of(key[len(prefix) :]) if key.startswith(prefix) else key: value
            for key, value in state_dict.items()
        }

    def forward(
        self, images: Tensor | Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training: the loss dict; evaluation: the detections of every image (module docstring)."""
        images = as_image_list(images)
        name = type(self).__name__
        for image in images:
            check_image_batch(image.unsqueeze(0), image.shape[0], name, next(self.parameters()).dtype)
        if self.training:
            targets = check_detection_targets(
                targets, len(images), self.num_classes, device=images[0].device, model_name=name,
                positive_size=True, background_label=0,
            )  # fmt: skip
        else:
            targets = None
        original_sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
        batch, targets = self.transform(images, targets)
        features = self.backbone(batch.tensors)
        features = [features] if isinstance(features, Tensor) else list(features.values())
        cls_logits, bbox_regression = self.head(features)
        anchors = self.anchor_generator(batch, features)
        if self.training:
            return multibox_loss(
                cls_logits, bbox_regression, anchors, targets, self.matcher, self.box_coder, self.neg_to_pos_ratio
            )
        detections = self.postprocess_detections(cls_logits, bbox_regression, anchors, batch.image_sizes)
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes)

    def postprocess_detections(
        self,
        cls_logits: Tensor,
        bbox_regression: Tensor,
        anchors: Sequence[Tensor],
        image_sizes: Sequence[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """Per class the ``topk_candidates`` best boxes above ``score_thresh``, then NMS (module docstring)."""
        num_images, num_boxes, num_classes = cls_logits.shape
        scores = F.softmax(cls_logits, dim=-1)
        boxes = self.box_coder.decode_single(bbox_regression.reshape(-1, 4), torch.cat(list(anchors)))
        boxes = torch.stack(
            [
                clip_boxes_to_image(b, size)
                for b, size in zip(boxes.view(num_images, num_boxes, 4), image_sizes, strict=True)
            ]
        )
        # Each class's best boxes, then the threshold: the same set as torchvision's threshold, then top-k.
        values, index = scores[:, :, 1:].transpose(1, 2).topk(min(self.topk_candidates, num_boxes), dim=2)
        keep = values > self.score_thresh
        image = torch.arange(num_images, device=scores.device)[:, None, None].expand_as(index)[keep]
        labels = torch.arange(1, num_classes, device=scores.device)[None, :, None].expand_as(index)[keep]
        candidates = Candidates(image, index[keep], labels, values[keep])
        return select_detections(
            boxes[candidates.image, candidates.prediction], candidates, num_images, num_classes,
            self.nms_thresh, self.detections_per_img,
        )  # fmt: skip


# --- builders ---------------------------------------------------------------------------------------------
def _fixed_size(name: str, built_for: int, kwargs: dict) -> tuple[int, int]:
    """The builder's fixed input size; ``size=`` for any other is an error (its default boxes fit one size)."""
    size = kwargs.pop("size", (built_for, built_for))
    as_pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size)
    if as_pair != (built_for, built_for):
        raise ValueError(
            f"{name}: its default boxes were built for {built_for}×{built_for} inputs (every image is resized to "
            f"that size), got size={size!r}; build an SSD with another DefaultBoxGenerator for another size"
        )
    return as_pair


@register_model(
    task="detection",
    input_size=300,
    reference="torchvision:ssd300_vgg16",
    reference_kwargs={"weights_backbone": None},  # nothing is downloaded
    paper=SSD_PAPER,
    published=Published(35_641_826, 34.858, TORCHVISION_DOCS, 0.05, True),
)
def ssd300_vgg16(*, num_classes: int = 91, trainable_backbone_layers: int | None = None, **kwargs) -> SSD:
    """torchvision's ``ssd300_vgg16`` (35,641,826 parameters at 91 classes): VGG-16 with the L2-normed conv4_3,
    the dilated fc6/fc7 and four extra layers, 8,732 default boxes (scales 0.07 .. 1.05, steps 8 .. 300), inputs
    stretched to 300×300 and normalised as Caffe's VGG (mean 0.48235, 0.45882, 0.40784 and std 1/255: the
    0..255 range). ``trainable_backbone_layers`` (0..5, None: all, torchvision's setting without pretrained
    weights) keeps the last VGG stages trainable. Other keyword arguments go to :class:`SSD`."""
    size = _fixed_size("ssd300_vgg16", 300, kwargs)
    anchors = DefaultBoxGenerator(
        [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
        scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
        steps=[8, 16, 32, 64, 100, 300],
    )
    defaults = {"image_mean": [0.48235, 0.45882, 0.40784], "image_std": [1.0 / 255.0] * 3}
    return SSD(SSDVGGBackbone(trainable_backbone_layers), anchors, size, num_classes, **{**defaults, **kwargs})


@register_model(
    task="detection",
    input_size=320,
    reference="torchvision:ssdlite320_mobilenet_v3_large",
    reference_kwargs={"weights_backbone": None},
    paper=SSDLITE_PAPER,
    published=Published(3_440_060, 0.583, TORCHVISION_DOCS, 0.05, True),
)
def ssdlite320_mobilenet_v3_large(
    *,
    num_classes: int = 91,
    trainable_backbone_layers: int | None = None,
    norm_layer: Callable[[int], nn.Module] = SSDLITE_NORM,
    **kwargs,
) -> SSD:
    """torchvision's ``ssdlite320_mobilenet_v3_large`` (3,440,060 parameters at 91 classes) without a pretrained
    backbone: MobileNetV3-Large with the reduced tail, four depthwise extra blocks, depthwise-separable heads,
    3,234 default boxes (6 maps, ratios 2 and 3, scales 0.2 .. 0.95 spread over each map's grid), inputs
    stretched to 320×320 and mapped to [-1, 1]; BN eps 0.001, momentum 0.03. Other keyword arguments go to
    :class:`SSD` (score 0.001, NMS 0.55, 300 candidates and detections by default)."""
    size = _fixed_size("ssdlite320_mobilenet_v3_large", 320, kwargs)
    backbone = SSDLiteMobileNetV3Backbone(trainable_backbone_layers, norm_layer)
    anchors = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
    head = ssdlite_head(backbone.out_channels, anchors.num_anchors_per_location(), num_classes, norm_layer)
    defaults = {
        "score_thresh": 0.001,
        "nms_thresh": 0.55,
        "detections_per_img": 300,
        "topk_candidates": 300,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    return SSD(backbone, anchors, size, num_classes, head=head, **{**defaults, **kwargs})
