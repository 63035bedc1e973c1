"""YOLOv3 (Redmon & Farhadi, 2018, "YOLOv3: An Incremental Improvement", arXiv:1804.02767): the network of
Darknet's ``yolov3.cfg``, and the same head on any registered backbone with stride-8/16/32 feature maps.

Head, coarse to fine. On the stride-32 map: five convs alternating 1×1 (W) and 3×3 (2W), a 3×3 conv (2W) and a
1×1 conv with bias giving A·(5 + C) channels (A anchors, C classes). The fifth conv's output goes through a 1×1
conv (the next scale's W), a ×2 nearest upsampling and is concatenated with the stride-16 backbone map, where
the same head runs; likewise for stride 8. Per scale, with C_in channels entering it and O = A·(5 + C):
    params = C_in·W + 58·W² + 18·W + 2·W·O + O
Darknet-53 with W = 512, 256, 128, A = 3 and C = 80 gives yolov3.cfg's 61,949,149 parameters.

Decoding (paper §2.1). At cell (c_x, c_y) of a level of stride s, with anchor (p_w, p_h) in input pixels:
    b_x = (σ(t_x) + c_x)·s,   b_y = (σ(t_y) + c_y)·s,   b_w = p_w·exp(t_w),   b_h = p_h·exp(t_h)
    score of class c = σ(t_obj)·σ(t_c)            (independent logistic classifiers, no softmax; §2.2)
(t_w, t_h are clamped at log(1000/16) before exp, as torchvision's BoxCoder does, so a box cannot overflow.)
Inference keeps every (box, class) scoring above ``score_thresh`` among the ``topk_candidates`` best,
clips the boxes to the image, runs class-wise NMS (IoU 0.45, Darknet's) and keeps ``detections_per_img``.

Targets (§2.1 and Darknet's yolo_layer.c). Each ground-truth box goes to the one anchor, of all nine, whose
co-centred box has the highest IoU with its width and height, at the cell of that anchor's level containing
its centre (a later box overwrites an earlier one on the same cell and anchor, as in Darknet):
    t̂_x = x/s − c_x,   t̂_y = y/s − c_y,   t̂_w = log(w/p_w),   t̂_h = log(h/p_h)
A prediction not assigned to a box, whose decoded box overlaps a ground truth of its image with IoU above
``ignore_thresh``, is not penalised as a negative. The paper's §2.1 gives 0.5, the default here; Darknet's
yolov3.cfg sets ``ignore_thresh=.7``. Boxes of zero width or height cannot be encoded (log 0) and are skipped.

Loss: sums over the predictions of an image, averaged over the images. Darknet's deltas are the negative
gradients of these terms with respect to the raw outputs:
    loss_box = Σ_pos (2 − w·h/(W·H)) · [BCE(t_x, t̂_x) − H(t̂_x) + BCE(t_y, t̂_y) − H(t̂_y) + ½(t_w − t̂_w)² + ½(t_h − t̂_h)²]
    loss_obj = Σ_pos BCE(t_obj, 1) + Σ_{negatives not ignored} BCE(t_obj, 0)
    loss_cls = Σ_pos Σ_c BCE(t_c, [c = label])
with BCE taken on logits and W×H the input size. Subtracting the target's entropy H(t̂) makes the centre term
0 at a perfect fit without changing its gradient. Unlike Darknet (zero biases) the objectness and class
biases start at the prior probability 0.01 (Lin et al., 2017, "Focal Loss", §4.1), so that the thousands of
negatives do not swamp the first steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.data.detection import check_detection_target
from zoo.layers.conv_norm_act import ConvNormAct
from zoo.layers.helpers import make_divisible
from zoo.models.base import check_image_batch
from zoo.models.darknet import darknet_leaky_relu
from zoo.models.features import FeatureListNet
from zoo.ops.anchors import kmeans_anchors, wh_iou
from zoo.ops.boxes import box_iou
from zoo.ops.nms import batched_nms
from zoo.registry import create_model, model_task, register_model

__all__ = [
    "DARKNET_ANCHORS",
    "STRIDES",
    "DetectionBlock",
    "YOLOTargets",
    "YOLOv3",
    "YOLOv3Head",
    "yolov3_from_backbone",
]

STRIDES = (8, 16, 32)
# yolov3.cfg's anchors (width, height) in pixels of the 416×416 input, three per stride, smallest first.
DARKNET_ANCHORS = (
    (10, 13), (16, 30), (33, 23),  # stride 8
    (30, 61), (62, 45), (59, 119),  # stride 16
    (116, 90), (156, 198), (373, 326),  # stride 32
)  # fmt: skip
PRIOR_PROBABILITY = 0.01
# exp(t_w) is clamped as torchvision's BoxCoder does (bbox_xform_clip), so a decoded box stays finite.
MAX_LOG_SCALE = math.log(1000.0 / 16)


class YOLOTargets(NamedTuple):
    """The positives of a batch, one row per assigned ground-truth box."""

    image: Tensor  # [G] image index
    index: Tensor  # [G] prediction index within the image (levels, then anchor, row, column)
    offsets: Tensor  # [G, 4] (t̂_x, t̂_y, t̂_w, t̂_h)
    labels: Tensor  # [G] class index
    weight: Tensor  # [G] 2 − w·h/(W·H)


class DetectionBlock(nn.Module):
    """One scale of the head: five convs 1×1 (W) / 3×3 (2W) alternating, then a 3×3 conv (2W) and the 1×1
    prediction conv (with bias). ``forward`` returns ``(route, prediction)``: the fifth conv's output, which
    feeds the next finer scale, and the raw ``out_channels`` map.

    params = C_in·W + 58·W² + 18·W + 2·W·O + O  for ``in_channels = C_in``, ``width = W``, ``out_channels = O``.
    """

    def __init__(
        self,
        in_channels: int,
        width: int,
        out_channels: int,
        act_layer: str | Callable[..., nn.Module] = darknet_leaky_relu,
    ) -> None:
        super().__init__()
        layers, channels = [], in_channels
        for index in range(5):
            out = width if index % 2 == 0 else 2 * width
            layers.append(ConvNormAct(channels, out, 1 if index % 2 == 0 else 3, act_layer=act_layer))
            channels = out
        self.convs = nn.Sequential(*layers)
        self.conv = ConvNormAct(width, 2 * width, 3, act_layer=act_layer)
        self.pred = nn.Conv2d(2 * width, out_channels, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        route = self.convs(x)
        return route, self.pred(self.conv(route))


class YOLOv3Head(nn.Module):
    """The three-scale head. ``in_channels`` and ``widths`` are listed finest first (strides 8, 16, 32), as
    ``forward``'s feature maps are; it returns one raw ``[N, out_channels, H_l, W_l]`` map per level, finest first.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        widths: Sequence[int],
        out_channels: int,
        act_layer: str | Callable[..., nn.Module] = darknet_leaky_relu,
    ) -> None:
        super().__init__()
        if len(widths) != len(in_channels) or not all(isinstance(w, int) and w > 0 for w in widths):
            raise ValueError(
                f"head_widths: expected {len(in_channels)} positive ints (one per level, finest first), got {widths!r}"
            )
        last = len(in_channels) - 1
        # laterals[l] reduces scale l+1's route to scale l's width before the upsampling.
        self.laterals = nn.ModuleList(
            ConvNormAct(widths[level + 1], widths[level], 1, act_layer=act_layer) for level in range(last)
        )
        # A module rather than F.interpolate, so that layer-wise counters (zoo.analysis) see it.
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.blocks = nn.ModuleList(
            DetectionBlock(
                in_channels[level] + (widths[level] if level < last else 0), widths[level], out_channels, act_layer
            )
            for level in range(last + 1)
        )

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        outputs: list[Tensor] = [features[0]] * len(features)
        route = None
        for level in reversed(range(len(features))):  # coarse to fine: each scale takes the coarser one's route
            x = features[level]
            if route is not None:
                upsampled = self.upsample(self.laterals[level](route))
                if upsampled.shape[-2:] != x.shape[-2:]:
                    raise ValueError(
                        f"feature map {level} (finest first) is {tuple(x.shape[-2:])}, not twice the next coarser "
                        f"one {tuple(route.shape[-2:])}: the head needs a backbone whose stages halve the size exactly"
                    )
                x = torch.cat([upsampled, x], dim=1)  # Darknet's order: route -1 (upsampled), then the backbone
            route, outputs[level] = self.blocks[level](x)
        return outputs


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


def _grid_sizes(raw_outputs: Sequence[Tensor]) -> list[tuple[int, int]]:
    return [(int(raw.shape[-2]), int(raw.shape[-1])) for raw in raw_outputs]


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
    channels). See the module docstring for the head, decoding, targets and loss.

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

    # --- input --------------------------------------------------------------------------------------------------------
    def batch_images(self, images: Tensor | Sequence[Tensor]) -> tuple[Tensor, list[tuple[int, int]]]:
        """``(batch [N, 3, H, W], per-image (height, width))``; a list is zero-padded to its largest size."""
        sizes = None
        if isinstance(images, (list, tuple)):
            for index, image in enumerate(images):
                if not isinstance(image, Tensor) or image.ndim != 3:
                    got = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
                    raise ValueError(f"images[{index}]: expected a tensor [3, H, W], got {got}")
            sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
            height, width = max((h for h, _ in sizes), default=32), max((w for _, w in sizes), default=32)
            padded = [F.pad(image, (0, width - image.shape[-1], 0, height - image.shape[-2])) for image in images]
            images = torch.stack(padded) if padded else torch.empty(0, 3, height, width)
        check_image_batch(images, 3, type(self).__name__)
        height, width = images.shape[-2:]
        if height % STRIDES[-1] or width % STRIDES[-1] or height == 0 or width == 0:
            raise ValueError(
                f"{type(self).__name__} expects an input whose height and width are positive multiples of "
                f"{STRIDES[-1]} (its coarsest stride), got {height}×{width}"
            )
        return images, sizes if sizes is not None else [(height, width)] * len(images)

    def check_targets(self, targets: object, num_images: int, device: torch.device) -> list[dict[str, Tensor]]:
        """Validate per-image ``{"boxes", "labels"}`` targets; return float boxes and int64 labels on ``device``."""
        if targets is None:
            raise ValueError("targets: YOLOv3 in training mode needs one {'boxes', 'labels'} dict per image, got None")
        if not isinstance(targets, (list, tuple)) or len(targets) != num_images:
            got = f"{len(targets)} targets" if isinstance(targets, (list, tuple)) else type(targets).__name__
            raise ValueError(f"targets: expected a list of {num_images} dicts, one per image, got {got}")
        checked = []
        for index, target in enumerate(targets):
            check_detection_target(target, index, self.num_classes)
            checked.append(
                {"boxes": target["boxes"].to(device, torch.float32), "labels": target["labels"].to(device, torch.int64)}
            )
        return checked

    # --- network ------------------------------------------------------------------------------------------------------
    def forward_raw(self, images: Tensor) -> list[Tensor]:
        """Raw head outputs ``[N, A·(5 + C), H/s, W/s]`` for s = 8, 16, 32; channel ``a·(5 + C) + k`` holds
        (t_x, t_y, t_w, t_h, t_obj, t_c...)[k] of anchor ``a``."""
        return self.head(self.backbone(images))

    def forward(
        self, images: Tensor | Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        batch, sizes = self.batch_images(images)
        input_size = (batch.shape[-2], batch.shape[-1])
        if self.training:
            targets = self.check_targets(targets, len(batch), batch.device)
            return self.compute_loss(self.forward_raw(batch), targets, input_size)
        return self.postprocess(self.forward_raw(batch), sizes, input_size)

    # --- geometry -----------------------------------------------------------------------------------------------------
    def flatten_outputs(self, raw_outputs: Sequence[Tensor]) -> Tensor:
        """``[N, P, 5 + C]``: the predictions of all levels, each ordered anchor, row, column."""
        flat = []
        for level, raw in enumerate(raw_outputs):
            n, channels, height, width = raw.shape
            if channels != self.num_anchors * (5 + self.num_classes):
                raise ValueError(
                    f"raw_outputs[{level}]: expected {self.num_anchors * (5 + self.num_classes)} channels "
                    f"(A·(5 + C)), got {channels}"
                )
            per_anchor = raw.view(n, self.num_anchors, 5 + self.num_classes, height, width)
            flat.append(per_anchor.permute(0, 1, 3, 4, 2).reshape(n, -1, 5 + self.num_classes))
        return torch.cat(flat, dim=1)

    def prediction_grid(
        self, grid_sizes: Sequence[tuple[int, int]], input_size: tuple[int, int]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per prediction (in :meth:`flatten_outputs` order): its cell ``(c_x, c_y)``, anchor ``(p_w, p_h)`` and
        stride ``(s_x, s_y)``, each ``[P, 2]``."""
        cells, anchor_sizes, strides = [], [], []
        device = self.anchors.device
        for (height, width), level_anchors in zip(grid_sizes, self.anchors, strict=True):  # three levels
            rows, columns = torch.meshgrid(
                torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij"
            )
            cell = torch.stack([columns, rows], dim=-1).reshape(1, -1, 2).float()
            cells.append(cell.expand(self.num_anchors, -1, -1).reshape(-1, 2))
            anchor_sizes.append(level_anchors[:, None].expand(-1, height * width, -1).reshape(-1, 2))
            stride = torch.tensor([input_size[1] / width, input_size[0] / height], device=device)
            strides.append(stride.expand(self.num_anchors * height * width, 2))
        return torch.cat(cells), torch.cat(anchor_sizes), torch.cat(strides)

    def decode(self, raw_outputs: Sequence[Tensor], input_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """``(boxes [N, P, 4] xyxy in input pixels, scores [N, P, C] = σ(t_obj)·σ(t_c))``."""
        predictions = self.flatten_outputs(raw_outputs)
        scores = predictions[..., 4:5].sigmoid() * predictions[..., 5:].sigmoid()
        return self.decode_boxes(predictions, _grid_sizes(raw_outputs), input_size), scores

    def decode_boxes(
        self, predictions: Tensor, grid_sizes: Sequence[tuple[int, int]], input_size: tuple[int, int]
    ) -> Tensor:
        """xyxy boxes ``[N, P, 4]`` from flattened predictions ``[N, P, 5 + C]`` (paper §2.1)."""
        cells, anchor_sizes, strides = self.prediction_grid(grid_sizes, input_size)
        centres = (predictions[..., :2].sigmoid() + cells) * strides
        sizes = anchor_sizes * predictions[..., 2:4].clamp(max=MAX_LOG_SCALE).exp()
        return torch.cat([centres - sizes / 2, centres + sizes / 2], dim=-1)

    # --- inference ----------------------------------------------------------------------------------------------------
    def postprocess(
        self, raw_outputs: Sequence[Tensor], image_sizes: Sequence[tuple[int, int]], input_size: tuple[int, int]
    ) -> list[dict[str, Tensor]]:
        """Score threshold, clipping, class-wise NMS and the best ``detections_per_img``, per image."""
        boxes, scores = self.decode(raw_outputs, input_size)
        num_images, _, num_classes = scores.shape
        # Multi-label: every (box, class) pair is a candidate; the best few per image go on to NMS.
        top_scores, top_index = scores.flatten(1).topk(min(self.topk_candidates, scores[0].numel()), dim=1)
        keep = top_scores > self.score_thresh
        image = torch.arange(num_images, device=boxes.device)[:, None].expand_as(top_index)[keep]
        candidate_scores, top_index = top_scores[keep], top_index[keep]
        labels = top_index % num_classes
        limits = torch.tensor([[w, h, w, h] for h, w in image_sizes], dtype=boxes.dtype, device=boxes.device)
        candidate_boxes = torch.minimum(boxes[image, top_index // num_classes].clamp(min=0), limits[image])

        kept = batched_nms(candidate_boxes, candidate_scores, image * num_classes + labels, self.nms_thresh)
        # Group by image, best first (a stable sort by image keeps the score order), and cut each group.
        kept = kept[candidate_scores[kept].argsort(descending=True, stable=True)]
        kept = kept[image[kept].argsort(stable=True)]
        counts = torch.bincount(image[kept], minlength=num_images)
        rank = torch.arange(len(kept), device=kept.device) - (counts.cumsum(0) - counts)[image[kept]]
        kept = kept[rank < self.detections_per_img]
        counts = torch.bincount(image[kept], minlength=num_images).tolist()
        per_image = (
            candidate_boxes[kept].split(counts),
            candidate_scores[kept].split(counts),
            labels[kept].split(counts),
        )
        return [{"boxes": b, "scores": s, "labels": c} for b, s, c in zip(*per_image, strict=True)]

    # --- training -----------------------------------------------------------------------------------------------------
    def encode_targets(
        self, targets: Sequence[dict[str, Tensor]], grid_sizes: Sequence[tuple[int, int]], input_size: tuple[int, int]
    ) -> YOLOTargets:
        """Assign each ground-truth box to its best-shaped anchor at the cell holding its centre (vectorised over
        the boxes of all images)."""
        device = self.anchors.device
        boxes = torch.cat([t["boxes"] for t in targets]).to(device, torch.float32).reshape(-1, 4)
        labels = torch.cat([t["labels"] for t in targets]).to(device, torch.int64).reshape(-1)
        counts = torch.tensor([len(t["boxes"]) for t in targets], device=device)
        image = torch.repeat_interleave(torch.arange(len(targets), device=device), counts)
        sizes = boxes[:, 2:] - boxes[:, :2]
        encodable = (sizes > 0).all(dim=1)
        boxes, labels, image, sizes = boxes[encodable], labels[encodable], image[encodable], sizes[encodable]

        best = wh_iou(sizes, self.anchors.reshape(-1, 2)).argmax(dim=1)  # the first of equal IoUs, as Darknet
        level, anchor = best // self.num_anchors, best % self.num_anchors
        grid = torch.tensor([list(g) for g in grid_sizes], device=device)  # [L, 2] (rows, columns)
        cells_per_level = self.num_anchors * grid.prod(dim=1)
        level_start = torch.cumsum(cells_per_level, 0) - cells_per_level
        columns, rows = grid[level, 1], grid[level, 0]
        grid_wh = torch.stack([columns, rows], dim=1).float()
        input_wh = torch.tensor([input_size[1], input_size[0]], device=device, dtype=torch.float32)
        strides = input_wh / grid_wh
        # A centre outside the image (a box partly outside) is assigned to the nearest border cell.
        centres = ((boxes[:, :2] + boxes[:, 2:]) / 2).clamp(min=torch.zeros_like(input_wh), max=input_wh)
        cells = torch.minimum((centres / strides).floor(), grid_wh - 1)
        index = level_start[level] + (anchor * rows + cells[:, 1].long()) * columns + cells[:, 0].long()

        # One ground truth per prediction: the last of the boxes sharing it, as Darknet overwrites.
        total = int(cells_per_level.sum())
        keys, inverse = torch.unique(image * total + index, return_inverse=True)
        order = torch.arange(len(index), device=device)
        last = torch.full((len(keys),), -1, device=device).scatter_reduce(0, inverse, order, "amax")
        offsets = torch.cat([centres / strides - cells, torch.log(sizes / self.anchors.reshape(-1, 2)[best])], dim=1)
        weight = 2 - sizes.prod(dim=1) / (input_size[0] * input_size[1])
        return YOLOTargets(image[last], index[last], offsets[last], labels[last], weight[last])

    def ignored_predictions(self, boxes: Tensor, targets: Sequence[dict[str, Tensor]]) -> Tensor:
        """``[N, P]`` True where a decoded box overlaps a ground truth of its image with IoU above ignore_thresh."""
        ignored = torch.zeros(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
        # One IoU matrix per image: images hold different numbers of boxes, and a single batch-wide matrix would
        # cost N·P·(all boxes) memory.
        for index, target in enumerate(targets):
            if len(target["boxes"]):
                ignored[index] = box_iou(boxes[index], target["boxes"]).amax(dim=1) > self.ignore_thresh
        return ignored

    def compute_loss(
        self, raw_outputs: Sequence[Tensor], targets: Sequence[dict[str, Tensor]], input_size: tuple[int, int]
    ) -> dict[str, Tensor]:
        """The three YOLOv3 loss terms of the module docstring, per image summed and averaged over the images."""
        predictions = self.flatten_outputs(raw_outputs)
        num_images = len(predictions)
        grid_sizes = _grid_sizes(raw_outputs)
        assigned = self.encode_targets(targets, grid_sizes, input_size)
        positives = predictions[assigned.image, assigned.index]

        target_xy = assigned.offsets[:, :2]
        # BCE minus the target's entropy: 0 at a perfect fit, the same gradient as Darknet's delta.
        xy = F.binary_cross_entropy_with_logits(positives[:, :2], target_xy, reduction="none")
        xy = xy + torch.xlogy(target_xy, target_xy) + torch.xlogy(1 - target_xy, 1 - target_xy)
        wh = 0.5 * (positives[:, 2:4] - assigned.offsets[:, 2:]).square()
        loss_box = (assigned.weight[:, None] * (xy + wh)).sum()

        objectness = torch.zeros_like(predictions[..., 4])
        objectness[assigned.image, assigned.index] = 1.0
        with torch.no_grad():
            ignored = self.ignored_predictions(self.decode_boxes(predictions, grid_sizes, input_size), targets)
        counted = (~ignored) | (objectness > 0)
        loss_obj = F.binary_cross_entropy_with_logits(predictions[..., 4], objectness, reduction="none")[counted].sum()

        one_hot = F.one_hot(assigned.labels, self.num_classes).to(positives.dtype)
        loss_cls = F.binary_cross_entropy_with_logits(positives[:, 5:], one_hot, reduction="sum")
        return {"loss_box": loss_box / num_images, "loss_obj": loss_obj / num_images, "loss_cls": loss_cls / num_images}

    # --- anchors ------------------------------------------------------------------------------------------------------
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


@register_model(task="detection")
def yolov3(*, num_classes: int = 80, **kwargs) -> YOLOv3:
    """Darknet's yolov3.cfg: Darknet-53 and head widths 512, 256, 128 (61,949,149 parameters at 80 classes)."""
    return yolov3_from_backbone("darknet53", num_classes=num_classes, **kwargs)


@register_model(task="detection")
def yolov3_mobilenet_v2(*, num_classes: int = 80, **kwargs) -> YOLOv3:
    """The YOLOv3 head on MobileNetV2 (32, 96, 320 channels at strides 8, 16, 32; head widths 16, 48, 160)."""
    return yolov3_from_backbone("mobilenet_v2", num_classes=num_classes, **kwargs)
