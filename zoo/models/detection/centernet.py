"""CenterNet (Zhou, Wang & Krähenbühl, 2019, "Objects as Points", arXiv:1904.07850), the ResNet variant of the
official code (``msra_resnet.py``, after Xiao et al.'s "Simple Baselines" pose network):

    backbone:   ResNet stages down to stride 32 (ResNet-18: 512 channels)
    upsampling: 3 × [4×4 transposed conv, stride 2, padding 1, output padding 0, no bias → BN → ReLU],
                256 channels each                                                            (stride 32 → 4)
    heads:      heatmap (C), size (2), offset (2); each 3×3 conv (64, bias) → ReLU → 1×1 conv

Parameters: backbone + Σ_i (16 · C_in,i · 256 + 2 · 256) + 3 · (9 · 256 · 64 + 64) + 65 · (C + 4)
(ResNet-18 at C = 80 classes: 11,176,512 + 4,195,840 + 442,560 + 5,460 = 15,820,372).

Targets, with output stride R = 4 and every length in output cells (input pixels / R). A box is clipped to
[0, W/R - 1] × [0, H/R - 1] (as the official data loader does; boxes left with no width or height are masked out);
with centre c, width w and height h:

    peak       p = ⌊c⌋
    heatmap    Y[class, y, x] = max over objects of exp(-((x - p_x)² + (y - p_y)²) / (2σ²)),
               σ = (2r + 1) / 6,  r = max(0, int(gaussian_radius(⌈h⌉, ⌈w⌉, 0.7)))   (zoo.ops.heatmap)
    size       s = (w, h) in output cells, as the official code regresses it
    offset     o = c - p

Loss (weights 1, 0.1, 1 as in the paper), N the number of objects:

    L = L_heatmap + 0.1 · L_size + L_offset
    L_heatmap = penalty-reduced pixel focal loss (α = 2, β = 4)                    (zoo.ops.losses)
    L_size    = 1/N Σ_k |ŝ(p_k) - s_k|₁,    L_offset = 1/N Σ_k |ô(p_k) - o_k|₁     (paper eq. 2-3)

(The official ``RegL1Loss`` divides by 2N, the number of regressed coordinates, not N: its size and offset
losses are half of these.)

Decoding: Ŷ = σ(heatmap logits); a cell is a peak where it equals the maximum of its 3×3 neighbourhood; the top
100 peaks over classes × cells give, with p the cell, boxes (p + ô ± ŝ/2) · R in input pixels (not clipped to the
image, as in the official code). All 100 are returned, as in the paper's evaluation; ``score_threshold`` drops the
low ones (peaks always have a positive score, so the default 0 drops only the suppressed cells that small maps can
bring into the top 100).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import zoo.models.resnet  # noqa: F401  (registers the ResNet backbones)
from zoo.layers import ConvNormAct
from zoo.ops.boxes import clip_boxes_to_image
from zoo.ops.heatmap import draw_gaussians, gaussian_radius
from zoo.ops.losses import centernet_focal_loss
from zoo.registry import create_model, register_model

from .batching import batch_images
from .dense import flatten_levels, per_image, top_candidates
from .targets import check_detection_targets

__all__ = ["CenterNet", "centernet_decode", "centernet_loss", "centernet_targets"]

# Initial heatmap bias: σ(-2.19) ≈ 0.1, the prior of the official code (and of RetinaNet's focal loss).
CENTERNET_PAPER = "Zhou et al. 2019, Objects as Points, arXiv:1904.07850"

HEATMAP_PRIOR_BIAS = -2.19


def _upsampling_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    """4×4 transposed conv at stride 2 with padding 1 exactly doubles H and W; then BN → ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, output_padding=0, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _head(in_channels: int, width: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        ConvNormAct(in_channels, width, 3, bias=True, norm_layer=None),
        nn.Conv2d(width, out_channels, 1),
    )


def centernet_targets(
    targets: Sequence[dict[str, Tensor]],
    num_classes: int,
    output_size: tuple[int, int],
    stride: int = 4,
    min_overlap: float = 0.7,
    published_radius: bool = True,
) -> dict[str, Tensor]:
    """Encode ground-truth boxes (input pixels) for output maps of ``output_size = (height, width)`` cells.

    Returns, for the M objects of all images together (module docstring for the formulas):
    ``heatmap [N, C, h, w]``; ``batch_index [M]``; ``peak [M, 2]`` integer (x, y) cells; ``size [M, 2]``
    (w, h) and ``offset [M, 2]`` (x, y) in output cells; ``mask [M]``, False for boxes with no area after
    clipping (they train nothing). ``published_radius`` chooses CenterNet's published Gaussian radius (True,
    the official targets) or the corrected geometry (see zoo.ops.heatmap). The targets are those of
    :func:`~zoo.models.detection.targets.check_detection_targets` (the model checks them before encoding).
    """
    height, width = output_size
    device = targets[0]["boxes"].device if targets else torch.device("cpu")
    boxes = torch.cat([t["boxes"] for t in targets] or [torch.zeros(0, 4)]).to(device) / stride
    labels = torch.cat([t["labels"] for t in targets] or [torch.zeros(0, dtype=torch.long)]).to(device)
    counts = torch.tensor([len(t["boxes"]) for t in targets], device=device)
    batch_index = torch.repeat_interleave(torch.arange(len(targets), device=device), counts)

    boxes = clip_boxes_to_image(boxes, (height - 1, width - 1))
    size = boxes[:, 2:] - boxes[:, :2]
    mask = (size > 0).all(dim=1)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    peak = centre.floor().long()  # centres are >= 0 after clipping, so this is the official int()
    radius = gaussian_radius(size[:, 1].ceil(), size[:, 0].ceil(), min_overlap, original=published_radius)
    radius = radius.trunc().clamp(min=0).long()

    # One [N·C, h, w] stack of channels, so that the objects of every image are drawn in one call.
    heatmap = torch.zeros(len(targets) * num_classes, height, width, device=device)
    channel = batch_index * num_classes + labels
    draw_gaussians(heatmap, peak[mask], radius[mask], channel[mask])
    return {
        "heatmap": heatmap.view(len(targets), num_classes, height, width),
        "batch_index": batch_index,
        "peak": peak,
        "size": size,
        "offset": centre - peak,
        "mask": mask,
    }


def centernet_loss(
    outputs: dict[str, Tensor], encoded: dict[str, Tensor], size_weight: float = 0.1, offset_weight: float = 1.0
) -> dict[str, Tensor]:
    """``{"loss_heatmap", "loss_size", "loss_offset"}`` (weighted) from the raw head ``outputs`` and the
    ``encoded`` targets of :func:`centernet_targets`; the L1 terms are read at the object peaks only."""
    mask = encoded["mask"]
    image, x, y = encoded["batch_index"][mask], encoded["peak"][mask, 0], encoded["peak"][mask, 1]
    num_objects = mask.sum().clamp(min=1)
    losses = {"loss_heatmap": centernet_focal_loss(outputs["heatmap"], encoded["heatmap"])}
    for name, weight in (("size", size_weight), ("offset", offset_weight)):
        predicted = outputs[name].permute(0, 2, 3, 1)[image, y, x]  # [M, 2] at the peaks
        error = (predicted - encoded[name][mask].to(predicted.dtype)).abs().sum()
        losses[f"loss_{name}"] = weight * error / num_objects
    return losses


def centernet_decode(
    heatmap_logits: Tensor,
    size: Tensor,
    offset: Tensor,
    stride: int = 4,
    max_detections: int = 100,
    score_threshold: float = 0.0,
) -> list[dict[str, Tensor]]:
    """Detections ``[{"boxes" [D, 4] xyxy in input pixels, "scores" [D], "labels" [D] int64}]`` per image from
    raw ``heatmap_logits [N, C, h, w]``, ``size [N, 2, h, w]`` and ``offset [N, 2, h, w]`` (output cells):
    the top ``max_detections`` 3×3 peaks whose score is above ``score_threshold``."""
    num_images, num_classes, height, width = heatmap_logits.shape
    if size.shape != (num_images, 2, height, width) or offset.shape != size.shape:
        raise ValueError(
            f"size and offset: expected shape {[num_images, 2, height, width]} to match the heatmap, "
            f"got {list(size.shape)} and {list(offset.shape)}"
        )
    heat = heatmap_logits.sigmoid()
    is_peak = F.max_pool2d(heat, 3, stride=1, padding=1) == heat
    heat = torch.where(is_peak, heat, torch.zeros_like(heat))
    # Every (cell, class) pair is a candidate, as in the dense detectors: the top max_detections over both.
    candidates = top_candidates(flatten_levels([heat], num_classes), max_detections, score_threshold)
    image, cell = candidates.image, candidates.prediction
    centre = torch.stack((cell % width, cell // width), dim=1) + flatten_levels([offset], 2)[image, cell]
    # An untrained size head can regress negative sizes; the published code would emit x2 < x1 then.
    half_size = flatten_levels([size], 2)[image, cell].clamp(min=0) / 2
    boxes = torch.cat((centre - half_size, centre + half_size), dim=1) * stride
    return per_image(boxes, candidates, num_images)


class CenterNet(nn.Module):
    """CenterNet on a ``backbone`` that returns a list of feature maps (the last, deepest one is used) and
    declares ``feature_info`` (a zoo ``features_only`` model). See the module docstring."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        upsampling_channels: Sequence[int] = (256, 256, 256),
        head_width: int = 64,
        min_overlap: float = 0.7,
        published_radius: bool = True,
        size_weight: float = 0.1,
        offset_weight: float = 1.0,
        max_detections: int = 100,
        score_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if not hasattr(backbone, "feature_info"):
            raise TypeError(f"backbone must declare feature_info (a features_only model), got {type(backbone)}")
        deepest = backbone.feature_info[-1]
        self.size_divisor = deepest["reduction"]
        self.stride = self.size_divisor // 2 ** len(upsampling_channels)
        if self.stride < 1 or self.stride * 2 ** len(upsampling_channels) != self.size_divisor:
            raise ValueError(
                f"{len(upsampling_channels)} upsampling stages do not divide the backbone's stride "
                f"{self.size_divisor} into an integer output stride"
            )
        self.num_classes = num_classes
        self.in_chans = getattr(backbone, "in_chans", 3)
        self.min_overlap, self.published_radius = min_overlap, published_radius
        self.size_weight, self.offset_weight = size_weight, offset_weight
        self.max_detections, self.score_threshold = max_detections, score_threshold

        self.backbone = backbone
        widths = [deepest["num_chs"], *upsampling_channels]
        self.upsampling = nn.Sequential(
            *(_upsampling_stage(c_in, c_out) for c_in, c_out in zip(widths[:-1], widths[1:], strict=True))
        )
        self.heatmap_head = _head(widths[-1], head_width, num_classes)
        self.size_head = _head(widths[-1], head_width, 2)
        self.offset_head = _head(widths[-1], head_width, 2)
        self._init_weights()

    def _init_weights(self) -> None:
        # The official initialisation (msra_resnet.py: init_weights); hidden head convs keep PyTorch's default.
        for module in self.upsampling.modules():
            if isinstance(module, nn.ConvTranspose2d):
                nn.init.normal_(module.weight, std=0.001)
        nn.init.constant_(self.heatmap_head[-1].bias, HEATMAP_PRIOR_BIAS)
        for head in (self.size_head, self.offset_head):
            nn.init.normal_(head[-1].weight, std=0.001)
            nn.init.zeros_(head[-1].bias)

    def forward_heads(self, images: Tensor) -> dict[str, Tensor]:
        """Raw head outputs at stride 4: ``heatmap`` logits [N, C, h, w], ``size`` and ``offset`` [N, 2, h, w]."""
        features = self.upsampling(self.backbone(images)[-1])
        return {
            "heatmap": self.heatmap_head(features),
            "size": self.size_head(features),
            "offset": self.offset_head(features),
        }

    def forward(
        self, images: Tensor | Sequence[Tensor], targets: Sequence[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training: the loss dict (needs ``targets``); evaluation: one detection dict per image."""
        name = type(self).__name__
        dtype = next(self.parameters()).dtype
        images = batch_images(
            images, self.size_divisor, pad=False, in_channels=self.in_chans, model_name=name, dtype=dtype
        )
        images = images.tensors
        if self.training:
            targets = check_detection_targets(
                targets, len(images), self.num_classes, device=images.device, model_name=name
            )
        outputs = self.forward_heads(images)
        if not self.training:
            return centernet_decode(
                outputs["heatmap"], outputs["size"], outputs["offset"], self.stride,
                self.max_detections, self.score_threshold,
            )  # fmt: skip
        encoded = centernet_targets(
            targets, self.num_classes, tuple(outputs["heatmap"].shape[-2:]), self.stride,
            self.min_overlap, self.published_radius,
        )  # fmt: skip
        return centernet_loss(outputs, encoded, self.size_weight, self.offset_weight)


@register_model(task="detection", input_size=512, paper=CENTERNET_PAPER)
def centernet_resnet18(*, num_classes: int = 80, **kwargs) -> CenterNet:
    """CenterNet with a ResNet-18 backbone (the paper's "ResNet-18" row, ``msra_resnet.py``); ``kwargs`` go to
    :class:`CenterNet` (``head_width``, ``max_detections``, ``score_threshold``, ...)."""
    backbone = create_model("resnet18", features_only=True, out_indices=(-1,))
    return CenterNet(backbone, num_classes, **kwargs)
