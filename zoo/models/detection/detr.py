"""DETR (Carion, Massa, Synnaeve, Usunier, Kirillov & Zagoruyko, 2020, "End-to-End Object Detection with
Transformers", arXiv:2005.12872): detection as the direct prediction of a set, without anchors or NMS.

    images [N, 3, H, W] (normalised) + pixel mask [N, H, W] (1 on the image, 0 on a batch's padding)
      → ResNet-50 (frozen batch norm; stem and layer1 frozen) → C5 [N, 2048, H/32, W/32]
      → 1×1 conv to d = 256;  2-D sine positions (zoo.layers.positional) of the mask, nearest-resized to C5
      → Transformer (detr_transformer): 6 encoder layers over the H/32·W/32 cells, 6 decoder layers over
        Q = 100 object slots with learned query embeddings
      → per slot: class logits (C + 1, the last "no object") and a box (cx, cy, w, h) = σ(3-layer MLP),
        normalised by the image's own size (not the padded batch's)

Training matches slots to objects (``detr_matcher``: the Hungarian algorithm) and returns the set loss
(``detr_loss``: cross-entropy, L1, GIoU, and the same for each earlier decoder layer). Evaluation keeps every
slot, as the paper's PostProcess: score and label are the best class of softmax(logits) without "no object",
and the box is scaled to the image's pixels (xyxy). No NMS: the set loss already teaches the slots not to repeat.

Parameters of ``detr_resnet50`` at C = 91 (COCO's ids): ResNet-50 without its head 23,454,912; input projection
524,544; encoder 6 × 1,315,072; decoder 6 × 1,578,752 + 512; query embeddings 25,600; class head 23,644; box head
132,612: 41,524,768, as Hugging Face transformers' ``DetrForObjectDetection`` (whose state_dict loads with
``zoo.load_reference_weights``). Inputs are normalised by the data pipeline (ImageNet's mean and std for COCO),
as HF's ``pixel_values`` and the other zoo detectors that do not resize.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import zoo.models.resnet  # noqa: F401  (registers the ResNet backbones)
from zoo.layers.frozen_batch_norm import FrozenBatchNorm2d
from zoo.layers.positional import SinePositionEmbedding2d
from zoo.models.features import FeatureListNet
from zoo.ops.boxes import box_convert
from zoo.registry import register_model
from zoo.weights import nest_reference_renames, pack_qkv_projections

from .backbone import backbone_body
from .batching import ImageList, batch_images
from .detr_loss import detr_loss
from .detr_matcher import HungarianMatcher
from .detr_transformer import DetrTransformer
from .targets import check_detection_targets

__all__ = ["DETR", "DETR_PAPER", "detr_resnet50"]

DETR_PAPER = "Carion et al. 2020, End-to-End Object Detection with Transformers (DETR), arXiv:2005.12872"

# Hugging Face transformers' DetrForObjectDetection key → zoo key, after pack_qkv_projections has packed each
# attention's q/k/v projections into in_proj_weight/in_proj_bias (the backbone's rules are added per model).
HF_DETR_RENAMES = [
    (r"^model\.backbone\.model\.", "backbone."),
    (r"^model\.input_projection\.", "input_projection."),
    (r"^model\.query_position_embeddings\.", "query_embedding."),
    (r"^model\.encoder\.layers\.", "transformer.encoder."),
    (r"^model\.decoder\.layers\.", "transformer.decoder."),
    (r"^model\.decoder\.layernorm\.", "transformer.decoder_norm."),
    (r"\.o_proj\.", ".out_proj."),
    (r"\.encoder_attn\.", ".cross_attn."),
    (r"\.self_attn_layer_norm\.", ".norm1."),
    (r"\.encoder_attn_layer_norm\.", ".norm2."),
    (r"^(transformer\.encoder\.\d+)\.final_layer_norm\.", r"\1.norm2."),
    (r"^(transformer\.decoder\.\d+)\.final_layer_norm\.", r"\1.norm3."),
    (r"\.mlp\.fc(\d)\.", r".feed_forward.linear\1."),
    (r"^class_labels_classifier\.", "class_head."),
    (r"^bbox_predictor\.", "box_head."),
]


class BoxHead(nn.Module):
    """The box MLP: ``num_layers`` linear layers (ReLU between), ``in_features`` → ``hidden`` … → 4, then σ."""

    def __init__(self, in_features: int, hidden: int, num_layers: int = 3) -> None:
        super().__init__()
        widths = [in_features] + [hidden] * (num_layers - 1) + [4]
        self.layers = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in zip(widths[:-1], widths[1:], strict=True))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x).sigmoid()


def _check_count(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


def _check_fraction(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    return float(value)


class DETR(nn.Module):
    """DETR on ``backbone``, a features_only network whose last map feeds the Transformer (module docstring).

    ``forward(images, targets=None)`` follows torchvision's detectors: in training the loss dict ``{"loss_ce",
    "loss_bbox", "loss_giou", "loss_ce_0", …}`` (already weighted: minimise the sum), in evaluation
    ``[{"boxes" [Q, 4] xyxy in the image's pixels, "scores" [Q], "labels" [Q]}]`` per image. Images are an
    ``[N, 3, H, W]`` tensor or a list of ``[3, H, W]`` tensors of any sizes (zero-padded at the bottom and right,
    the padding masked out of the attention). Labels are 0..C − 1; logit C is "no object".

    Args:
        num_classes: C.
        num_queries: Q, the most objects an image can have.
        d_model, num_heads, num_encoder_layers, num_decoder_layers, dim_feedforward, dropout: the Transformer.
        aux_loss: add the losses of the earlier decoder layers in training.
        class_weight, bbox_weight, giou_weight: λ_cls, λ_L1, λ_giou, for both the matching cost and the loss.
        no_object_weight: the cross-entropy weight of the "no object" class.
    """

    def __init__(
        self,
        backbone: FeatureListNet,
        num_classes: int = 91,
        *,
        num_queries: int = 100,
        d_model: int = 256,
        num_heads: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        aux_loss: bool = True,
        class_weight: float = 1.0,
        bbox_weight: float = 5.0,
        giou_weight: float = 2.0,
        no_object_weight: float = 0.1,
    ) -> None:
        super().__init__()
        info = getattr(backbone, "feature_info", None)
        if info is None:
            raise TypeError(f"backbone: expected a features_only network with feature_info, got {type(backbone)}")
        self.num_classes = _check_count(num_classes, "num_classes")
        self.num_queries = _check_count(num_queries, "num_queries")
        _check_count(d_model, "d_model", 2)
        if d_model % 2:
            raise ValueError(
                f"d_model: expected an even width (half for rows' positions, half for columns'), got {d_model}"
            )
        self.aux_loss = bool(aux_loss)
        self.no_object_weight = _check_fraction(no_object_weight, "no_object_weight")
        self.matcher = HungarianMatcher(class_weight, bbox_weight, giou_weight)
        self.in_chans = getattr(backbone, "in_chans", 3)

        self.backbone = backbone
        self.input_projection = nn.Conv2d(info.channels()[-1], d_model, kernel_size=1)
        self.position_embedding = SinePositionEmbedding2d(d_model // 2, normalize=True)
        self.query_embedding = nn.Embedding(num_queries, d_model)
        dropout = _check_fraction(dropout, "dropout")
        self.transformer = DetrTransformer(
            d_model, num_heads, num_encoder_layers, num_decoder_layers, dim_feedforward, dropout
        )
        self.class_head = nn.Linear(d_model, num_classes + 1)
        self.box_head = BoxHead(d_model, d_model, 3)
        self.reference_renames = HF_DETR_RENAMES + nest_reference_renames("backbone", backbone.reference_renames)

    @staticmethod
    def convert_reference_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """HF's attention layers keep q, k and v apart; zoo's MultiheadAttention packs them (zoo.weights)."""
        return pack_qkv_projections(state_dict)

    def forward_raw(self, images: Tensor, pixel_mask: Tensor | None = None) -> dict[str, Tensor]:
        """``{"pred_logits" [N, Q, C + 1], "pred_boxes" [N, Q, 4] (cxcywh, in [0, 1] of each image's size)}`` from
        normalised ``images`` and ``pixel_mask [N, H, W]`` (1 on the image, 0 on padding; None: no padding), as
        HF's ``pixel_values`` and ``pixel_mask``. In training with ``aux_loss`` also ``"aux_outputs"``: the same
        two for each earlier decoder layer, first layer first."""
        features = self.backbone(images)[-1]
        if pixel_mask is None:
            mask = torch.ones(len(features), *features.shape[-2:], dtype=torch.bool, device=features.device)
            padding = None
        else:
            if not isinstance(pixel_mask, Tensor) or pixel_mask.shape != (len(images), *images.shape[-2:]):
                shape = list(pixel_mask.shape) if isinstance(pixel_mask, Tensor) else type(pixel_mask).__name__
                raise ValueError(
                    f"pixel_mask: expected shape {[len(images), *images.shape[-2:]]} (N, H, W), got {shape}"
                )
            # Nearest resizing to the feature map: cell (i, j) is real if pixel (⌊i·H/h⌋, ⌊j·W/w⌋) is.
            mask = F.interpolate(pixel_mask[None].float(), size=features.shape[-2:])[0].bool()
            padding = ~mask.flatten(1)
        position = self.position_embedding(mask, dtype=features.dtype).flatten(2).transpose(1, 2)
        tokens = self.input_projection(features).flatten(2).transpose(1, 2)
        intermediate = self.training and self.aux_loss
        slots = self.transformer(tokens, position, padding, self.query_embedding.weight, intermediate)
        logits, boxes = self.class_head(slots), self.box_head(slots)
        outputs = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        if intermediate:
            outputs["aux_outputs"] = [
                {"pred_logits": c, "pred_boxes": b} for c, b in zip(logits[:-1], boxes[:-1], strict=True)
            ]
        return outputs

    def forward(
        self, images: Tensor | Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        name = type(self).__name__
        batch = batch_images(images, in_channels=self.in_chans, model_name=name, dtype=next(self.parameters()).dtype)
        if self.training:
            targets = check_detection_targets(
                targets, len(batch.tensors), self.num_classes, device=batch.tensors.device, model_name=name
            )
        outputs = self.forward_raw(batch.tensors, pixel_mask(batch))
        if self.training:
            return self.compute_loss(outputs, targets, batch.image_sizes)
        return self.postprocess(outputs, batch.image_sizes)

    def compute_loss(
        self, outputs: dict, targets: Sequence[dict[str, Tensor]], image_sizes: Sequence[tuple[int, int]]
    ) -> dict[str, Tensor]:
        """The set loss (``detr_loss``) of ``forward_raw``'s outputs against xyxy pixel ``targets`` of images of
        ``image_sizes`` (H, W), which are normalised to cxcywh fractions of their image here."""
        normalised = [
            {"labels": target["labels"], "boxes": box_convert(target["boxes"], "xyxy", "cxcywh") / scale}
            for target, scale in zip(targets, _box_scales(image_sizes, outputs["pred_boxes"]), strict=True)
        ]
        matcher = self.matcher  # the loss weighs its terms as the matching cost does
        return detr_loss(
            outputs,
            normalised,
            matcher,
            no_object_weight=self.no_object_weight,
            class_weight=matcher.class_weight,
            bbox_weight=matcher.bbox_weight,
            giou_weight=matcher.giou_weight,
        )

    @staticmethod
    def postprocess(outputs: dict[str, Tensor], image_sizes: Sequence[tuple[int, int]]) -> list[dict[str, Tensor]]:
        """Every slot's best class other than "no object" and its box in xyxy pixels of its image (the paper's
        PostProcess)."""
        scores, labels = outputs["pred_logits"].softmax(-1)[..., :-1].max(-1)
        boxes = outputs["pred_boxes"]
        corners = box_convert(boxes.flatten(0, 1), "cxcywh", "xyxy").view(boxes.shape)
        corners = corners * _box_scales(image_sizes, boxes)[:, None]
        return [{"boxes": b, "scores": s, "labels": c} for b, s, c in zip(corners, scores, labels, strict=True)]


def _box_scales(image_sizes: Sequence[tuple[int, int]], like: Tensor) -> Tensor:
    """``[N, 4]``: (W, H, W, H) of each image, which turns fractions of it into pixels."""
    return torch.tensor([[w, h, w, h] for h, w in image_sizes], dtype=like.dtype, device=like.device)


def pixel_mask(batch: ImageList) -> Tensor | None:
    """HF's ``pixel_mask`` of a padded batch: ``[N, H, W]``, True on each image's own pixels; None when no image
    is padded (nothing to mask)."""
    height, width = batch.tensors.shape[-2:]
    if all(size == (height, width) for size in batch.image_sizes):
        return None
    mask = torch.zeros(len(batch.tensors), height, width, dtype=torch.bool, device=batch.tensors.device)
    for index, (h, w) in enumerate(batch.image_sizes):
        mask[index, :h, :w] = True
    return mask


@register_model(
    task="detection",
    input_size=800,
    reference="transformers:DetrForObjectDetection",
    # HF's DETR with timm's ResNet-50, built offline with random weights (nothing downloaded).
    reference_kwargs={
        "use_timm_backbone": True,
        "backbone": "resnet50",
        "use_pretrained_backbone": False,
        "num_labels": 91,
    },
    paper=DETR_PAPER,
)
def detr_resnet50(*, num_classes: int = 91, trainable_backbone_layers: int = 3, **kwargs) -> DETR:
    """DETR with a ResNet-50 (41,524,768 parameters at 91 classes): frozen batch norm, the deepest
    ``trainable_backbone_layers`` stages trained (3: layer2..layer4, as the paper). Other keyword arguments go
    to :class:`DETR`."""
    backbone = backbone_body(
        "resnet50", out_indices=(-1,), trainable_layers=trainable_backbone_layers, norm_layer=FrozenBatchNorm2d
    )
    return DETR(backbone, num_classes, **kwargs)
