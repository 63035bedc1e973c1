"""YOLOv3 (Redmon & Farhadi, 2018, "YOLOv3: An Incremental Improvement", arXiv:1804.02767): the network of
Darknet's ``yolov3.cfg``, and the same head on any registered backbone with stride-8/16/32 feature maps.

The parts, one file each: the three-scale head (``yolov3_head``: layers and parameter count), decoding of its
outputs to boxes and scores (``yolov3_decode``: paper §2.1-2.2), target assignment and the loss
(``yolov3_loss``: §2.1 and Darknet's yolo_layer.c). The images are batched by
:func:`~zoo.models.detection.batching.batch_images` and the targets checked by
:func:`~zoo.models.detection.targets.check_detection_targets`, as in every zoo detector.

Inference keeps every (box, class) scoring above ``score_thresh`` among the ``topk_candidates`` best, clips the
boxes to the image, runs class-wise NMS (IoU 0.45, Darknet's) and keeps ``detections_per_img``
(:mod:`zoo.models.detection.dense`, the selection of the dense detectors).

Unlike Darknet (zero biases) the objectness and class biases start at the prior probability 0.01 (Lin et al.,
2017, "Focal Loss", §4.1), so that the thousands of negatives do not swamp the first steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from zoo.layers.helpers import make_divisible
from zoo.models.darknet import YOLOV3_PAPER, darknet_leaky_relu
from zoo.models.features import FeatureListNet
from zoo.ops.anchors import kmeans_anchors
from zoo.registry import create_model, model_task, register_model

from .batching import batch_images
from .dense import clip_to_images, flatten_levels, select_detections, top_candidates
from .targets import check_detection_targets
from .yolov3_decode import decode_boxes, decode_scores, grid_sizes
from .yolov3_head import YOLOv3Head
from .yolov3_loss import yolov3_loss

__all__ = [
    "DARKNET_ANCHORS",
    "STRIDES",
    "YOLOv3",
    "yolov3",
    "yolov3_from_backbone",
    "yolov3_mobilenet_v2",
]

STRIDES = (8, 16, 32)
# yolov3.cfg's anchors (width, height) in pixels of the 416×416 input, three per stride, smallest first.
DARKNET_ANCHORS = (
    (10, 13), (16, 30), (33, 23),  # stride 8
    (30, 61), (62, 45), (59, 119),  # stride 16
    (116, 90), (156, 198), (373, 326),  # stride 32
)  # fmt: skip
PRIOR_PROBABILITY = 0.01


def _check_anchors(anchors: object, num_levels: int) -> Tensor:
    """``[num_levels, A, 2]`` anchors from a sequence of (w, h) pairs, sorted by area: smallest to the finest level."""
    try:
        # On the CPU even inside a `torch.device("meta")` context: the values are checked here.
        table = torch.as_tensor(anchors, dtype=torch.float32, device="cpu")
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"anchors: expected (width, height) pairs, got {anchors!r}") from None
    if table.ndim != 2 or table.shape[1] != 2 or len(table) == 0 or len(table) % num_levels:
        raise ValueError(
            f"anchors: expected a multiple of {num_levels} (width, height) pairs, {num_levels} levels, "
            f"got shape {list(table.shape)}"
        )
    if not (table > 0).all() or not table.isfinite().all():
        raise ValueError(f"anchors: expected positive finite widths and heights, got {table.tolist()}")
    table = table[table.prod(dim=1).argsort(stable=True)]
    return table.reshape(num_levels, -1, 2)


def _check_fraction(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    return float(value)


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


class YOLOv3(nn.Module):
    """YOLOv3 on a backbone whose ``forward`` returns its stride-8, 16 and 32 maps (``feature_info`` gives their
    channels). See the module docstring (and those of its parts) for the head, decoding, targets and loss.

    ``forward(images, targets=None)`` follows torchvision's detectors: a loss dict ``{"loss_box", "loss_obj",
    "loss_cls"}`` in training, ``[{"boxes", "scores", "labels"}]`` per image in evaluation. Images are an
    ``[N, 3, H, W]`` tensor or a list of ``[3, H, W]`` tensors (zero-padded at the bottom and right to a common
    size); H and W must be multiples of 32.

    Args:
        backbone: e.g. a :class:`~zoo.models.features.FeatureListNet` (see :func:`yolov3_from_backbone`).
        num_classes: C; labels index the C class outputs (no background class).
        anchors: (width, height) pairs in input pixels, a multiple of three; sorted by area, the smallest third
            goes to stride 8. Darknet's COCO anchors by default; :meth:`anchors_from_boxes` fits a dataset's.
        head_widths: W per scale, finest first; default half each backbone map's channels (512, 256, 128 on
            Darknet-53).
        ignore_thresh: IoU above which an unassigned prediction is not a negative.
        score_thresh, nms_thresh, detections_per_img, topk_candidates: inference (module docstring).
        act_layer: the head's activation (Darknet's LeakyReLU(0.1)).
    """

    default_input_size = (416, 416)

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int = 80,
        *,
        anchors: Sequence[Sequence[float]] | Tensor = DARKNET_ANCHORS,
        head_widths: Sequence[int] | None = None,
        ignore_thresh: float = 0.5,
        score_thresh: float = 0.01,
        nms_thresh: float = 0.45,
        detections_per_img: int = 100,
        topk_candidates: int = 1000,
        act_layer: str | Callable[..., nn.Module] = darknet_leaky_relu,
    ) -> None:
        super().__init__()
        info = getattr(backbone, "feature_info", None)
        if info is None or info.reduction() != list(STRIDES):
            raise ValueError(
                f"backbone: expected a features_only network with maps at strides {STRIDES}, "
                f"got {None if info is None else info.reduction()}"
            )
        self.num_classes = _check_count(num_classes, "num_classes")
        self.ignore_thresh = _check_fraction(ignore_thresh, "ignore_thresh")
        self.score_thresh = _check_fraction(score_thresh, "score_thresh")
        self.nms_thresh = _check_fraction(nms_thresh, "nms_thresh")
        self.detections_per_img = _check_count(detections_per_img, "detections_per_img")
        self.topk_candidates = _check_count(topk_candidates, "topk_candidates")
        self.register_buffer("anchors", _check_anchors(anchors, len(STRIDES)))
        self.num_anchors = self.anchors.shape[1]

        # Darknet's rule: each scale's head is half as wide as the backbone map it starts from (1024 → 512, ...).
        channels = info.channels()
        widths = [make_divisible(c / 2, 8) for c in channels] if head_widths is None else list(head_widths)
        self.backbone = backbone
        self.head = YOLOv3Head(channels, widths, self.num_anchors * (5 + num_classes), act_layer)
        self._init_prediction_biases()

    def _init_prediction_biases(self) -> None:
        prior_logit = -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)
        for block in self.head.blocks:
            with torch.no_grad():
                bias = block.pred.bias.view(self.num_anchors, 5 + self.num_classes)
                bias.zero_()
                bias[:, 4:] = prior_logit

    def forward_raw(self, images: Tensor) -> list[Tensor]:
        """Raw head outputs ``[N, A·(5 + C), H/s, W/s]`` for s = 8, 16, 32; channel ``a·(5 + C) + k`` holds
        (t_x, t_y, t_w, t_h, t_obj, t_c...)[k] of anchor ``a``."""
        return self.head(self.backbone(images))

    def forward(
        self, images: Tensor | Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        name = type(self).__name__
        batch = batch_images(
            images, STRIDES[-1], pad=False, in_channels=3, model_name=name, dtype=next(self.parameters()).dtype
        )
        input_size = (batch.tensors.shape[-2], batch.tensors.shape[-1])
        if self.training:
            device = batch.tensors.device
            targets = check_detection_targets(
                targets,
                len(batch.tensors),
                self.num_classes,
                device=device,
                model_name=name,
                image_sizes=batch.image_sizes,
            )
            return self.compute_loss(self.forward_raw(batch.tensors), targets, input_size)
        return self.postprocess(self.forward_raw(batch.tensors), batch.image_sizes, input_size)

    def flatten_outputs(self, raw_outputs: Sequence[Tensor]) -> Tensor:
        """``[N, P, 5 + C]``: the predictions of all levels, ordered level, row, column, anchor."""
        for level, raw in enumerate(raw_outputs):
            if raw.shape[1] != self.num_anchors * (5 + self.num_classes):
                raise ValueError(
                    f"raw_outputs[{level}]: expected {self.num_anchors * (5 + self.num_classes)} channels "
                    f"(A·(5 + C)), got {raw.shape[1]}"
                )
        return flatten_levels(raw_outputs, 5 + self.num_classes)

    def decode(self, raw_outputs: Sequence[Tensor], input_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """``(boxes [N, P, 4] xyxy in input pixels, scores [N, P, C] = σ(t_obj)·σ(t_c))`` (``yolov3_decode``)."""
        predictions = self.flatten_outputs(raw_outputs)
        boxes = decode_boxes(predictions, self.anchors, grid_sizes(raw_outputs), input_size)
        return boxes, decode_scores(predictions)

    def postprocess(
        self, raw_outputs: Sequence[Tensor], image_sizes: Sequence[tuple[int, int]], input_size: tuple[int, int]
    ) -> list[dict[str, Tensor]]:
        """Score threshold, clipping, class-wise NMS and the best ``detections_per_img``, per image."""
        boxes, scores = self.decode(raw_outputs, input_size)
        # Multi-label: every (box, class) pair is a candidate; the best few per image go on to NMS.
        candidates = top_candidates(scores, self.topk_candidates, self.score_thresh)
        candidate_boxes = clip_to_images(boxes[candidates.image, candidates.prediction], candidates.image, image_sizes)
        return select_detections(
            candidate_boxes, candidates, len(boxes), self.num_classes, self.nms_thresh, self.detections_per_img
        )

    def compute_loss(
        self, raw_outputs: Sequence[Tensor], targets: Sequence[dict[str, Tensor]], input_size: tuple[int, int]
    ) -> dict[str, Tensor]:
        """The three YOLOv3 loss terms (``yolov3_loss``), per image summed and averaged over the images."""
        predictions = self.flatten_outputs(raw_outputs)
        return yolov3_loss(predictions, targets, self.anchors, grid_sizes(raw_outputs), input_size, self.ignore_thresh)

    @staticmethod
    def anchors_from_boxes(
        wh: Tensor,
        num_anchors: int = 9,
        *,
        image_size: tuple[int, int] | None = None,
        input_size: tuple[int, int] | None = None,
        seed: int = 0,
    ) -> Tensor:
        """Anchors ``[num_anchors, 2]`` for ``anchors=``: YOLO9000's k-means (1 − IoU distance) on the training
        boxes' widths and heights ``wh [N, 2]``. Boxes measured on images of ``image_size`` (H, W) that the
        network sees at ``input_size`` (H, W) are rescaled first; without them ``wh`` is in input pixels."""
        if not isinstance(wh, Tensor):
            raise TypeError(f"wh: expected a tensor [N, 2] of box widths and heights, got {type(wh).__name__}")
        if (image_size is None) != (input_size is None):
            raise ValueError("image_size and input_size: give both (to rescale the boxes) or neither")
        if image_size is not None:
            scale = torch.tensor([input_size[1] / image_size[1], input_size[0] / image_size[0]])
            wh = wh * scale.to(wh.device)
        return kmeans_anchors(wh, k=num_anchors, seed=seed)


def _stride_features(backbone: str, backbone_kwargs: dict) -> FeatureListNet:
    """The registered classifier ``backbone`` cut to its last stride-8, 16 and 32 stages."""
    if not isinstance(backbone, str):
        raise TypeError(f"backbone: expected a registered classifier name, got {type(backbone).__name__}")
    if model_task(backbone) != "classification":
        raise ValueError(f"backbone: expected a classification model, {backbone!r} is a {model_task(backbone)} model")
    model = create_model(backbone, **backbone_kwargs)
    reductions = model.feature_info.reduction()
    indices = []
    for stride in STRIDES:
        if stride not in reductions:
            raise ValueError(f"backbone {backbone!r} has no stride-{stride} feature map (its strides: {reductions})")
        indices.append(len(reductions) - 1 - reductions[::-1].index(stride))
    return FeatureListNet(model, indices)


def yolov3_from_backbone(
    backbone: str, *, num_classes: int = 80, backbone_kwargs: dict | None = None, **kwargs
) -> YOLOv3:
    """YOLOv3's head on the stride-8/16/32 maps of the registered classifier ``backbone`` (built with
    ``backbone_kwargs``); other keyword arguments go to :class:`YOLOv3` (anchors, head_widths, thresholds...)."""
    return YOLOv3(_stride_features(backbone, dict(backbone_kwargs or {})), num_classes, **kwargs)


@register_model(task="detection", input_size=416, paper=YOLOV3_PAPER)
def yolov3(*, num_classes: int = 80, **kwargs) -> YOLOv3:
    """Darknet's yolov3.cfg: Darknet-53 and head widths 512, 256, 128 (61,949,149 parameters at 80 classes)."""
    return yolov3_from_backbone("darknet53", num_classes=num_classes, **kwargs)


@register_model(task="detection", input_size=416, paper=YOLOV3_PAPER)
def yolov3_mobilenet_v2(*, num_classes: int = 80, **kwargs) -> YOLOv3:
    """The YOLOv3 head on MobileNetV2 (32, 96, 320 channels at strides 8, 16, 32; head widths 16, 48, 160)."""
    return yolov3_from_backbone("mobilenet_v2", num_classes=num_classes, **kwargs)
