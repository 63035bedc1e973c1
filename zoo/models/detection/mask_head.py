"""The mask branch of Mask R-CNN (He, Gkioxari, Dollár & Girshick, 2017), drop-in for torchvision's
``MaskRCNNHeads``, ``MaskRCNNPredictor`` and the mask functions of its ``roi_heads``.

Each RoI is pooled to 14x14 from its FPN level (``MultiScaleRoIAlign``, 2x2 samples per bin), passed through
four 3x3 convolutions of 256 channels with ReLU (:class:`MaskRCNNHeads`), upsampled to 28x28 by a 2x2
transposed convolution of stride 2 with ReLU, and a 1x1 convolution gives one mask logit map per class
(:class:`MaskRCNNPredictor`).

Training, over the P positive sampled proposals of the batch, each matched to a ground-truth object g(p) of
class u_p: the target ``t_p`` is the object's binary mask cropped to the proposal's box and resampled to
M x M (M = 28) by RoIAlign (:func:`project_masks_on_boxes`), and

    loss_mask = 1 / (P M²)  sum_p sum_ij  BCE(sigmoid(m_p^{u_p}[i, j]), t_p[i, j])

(only the map of the true class is trained: per-class masks, with no competition between classes).

Inference: the map of each detection's class through a sigmoid, ``[D, 1, M, M]`` probabilities
(:func:`mask_probabilities`), later pasted into the image (:func:`paste_masks_in_image`): the M x M map is
padded by one pixel each side and its box widened by (M + 2) / M about its centre, so that the resampled mask
fades out at the box's border instead of being cut off there, then resized bilinearly onto the box's pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.layers.conv_norm_act import ConvNormAct
from zoo.ops.roi_align import roi_align

__all__ = [
    "MaskRCNNHeads",
    "MaskRCNNPredictor",
    "mask_probabilities",
    "maskrcnn_loss",
    "paste_masks_in_image",
    "project_masks_on_boxes",
]


class MaskRCNNHeads(nn.Sequential):
    """3x3 convolutions (bias, ReLU), one per entry of ``layers``, with ``dilation`` (and the padding that
    keeps the size). Parameters: sum_l (9 C_{l-1} + 1) C_l, i.e. 4 (9 C² + C) = 2,360,320 for C = 256.

    Weights start from He-normal (fan-out) and biases from zero, as torchvision's.
    """

    def __init__(self, in_channels: int, layers: Sequence[int] = (256, 256, 256, 256), dilation: int = 1) -> None:
        if not layers:
            raise ValueError(f"layers: expected the channels of at least one convolution, got {layers!r}")
        widths = [in_channels, *layers]
        super().__init__(
            *(
                ConvNormAct(c_in, c_out, 3, dilation=dilation, bias=True, norm_layer=None)
                for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
            )
        )
        for layer in self:
            nn.init.kaiming_normal_(layer.conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.conv.bias)
        # torchvision's key → ours: each of its layers is a Conv2dNormActivation ([conv, ReLU]); before
        # version 2 they were mask_fcn1..mask_fcn<n>.
        self.reference_renames = [(r"^(\d+)\.0\.", r"\1.conv.")] + [
            (rf"^mask_fcn{index + 1}\.", f"{index}.conv.") for index in range(len(layers))
        ]


class MaskRCNNPredictor(nn.Module):
    """``conv5_mask`` (2x2 transposed convolution, stride 2) + ReLU, then ``mask_fcn_logits`` (1x1) to K maps:
    (4 C + 1) D + (D + 1) K parameters for C input channels and D = ``dim_reduced`` (with C = D = 256 and
    K = 91 classes, 262,400 + 23,387 = 285,787). Weights He-normal (fan-out), biases PyTorch's default."""

    def __init__(self, in_channels: int, dim_reduced: int, num_classes: int) -> None:
        super().__init__()
        self.conv5_mask = nn.ConvTranspose2d(in_channels, dim_reduced, 2, stride=2)
        self.mask_fcn_logits = nn.Conv2d(dim_reduced, num_classes, 1)
        for conv in (self.conv5_mask, self.mask_fcn_logits):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """``[R, C, S, S]`` → ``[R, K, 2S, 2S]`` logits."""
        return self.mask_fcn_logits(F.relu(self.conv5_mask(x)))


def project_masks_on_boxes(gt_masks: Tensor, boxes: Tensor, matched_indices: Tensor, size: int) -> Tensor:
    """The ``size x size`` mask target of each box: RoIAlign (scale 1, adaptive sampling, not aligned) of the
    matched ground-truth mask ``gt_masks[matched_indices[r]]`` (``[G, H, W]``) over box r (``[R, 4]`` xyxy),
    ``[R, size, size]`` in [0, 1]."""
    rois = torch.cat([matched_indices.to(boxes)[:, None], boxes], dim=1)
    return roi_align(gt_masks[:, None].to(rois), rois, (size, size), 1.0)[:, 0]


def maskrcnn_loss(
    mask_logits: Tensor,
    proposals: Sequence[Tensor],
    gt_masks: Sequence[Tensor],
    gt_labels: Sequence[Tensor],
    matched_indices: Sequence[Tensor],
) -> Tensor:
    """``loss_mask`` (module docstring) of ``mask_logits [P, K, M, M]`` for the positive proposals (per image
    ``[P_i, 4]``), their matched ground truth's indices ``[P_i]`` into the image's ``gt_masks [G_i, H, W]`` and
    ``gt_labels [G_i]``. Zero (connected to the logits) when there is no positive proposal."""
    size = mask_logits.shape[-1]
    labels = torch.cat([classes[index] for classes, index in zip(gt_labels, matched_indices, strict=True)])
    targets = torch.cat(
        [
            project_masks_on_boxes(masks, boxes, index, size)
            for masks, boxes, index in zip(gt_masks, proposals, matched_indices, strict=True)
        ]
    )
    if targets.numel() == 0:  # the mean over no element would be NaN
        return mask_logits.sum() * 0
    own_class = mask_logits[torch.arange(len(labels), device=labels.device), labels]
    return F.binary_cross_entropy_with_logits(own_class, targets)


def mask_probabilities(mask_logits: Tensor, labels: Sequence[Tensor]) -> list[Tensor]:
    """Per image, the sigmoid of each detection's own-class map, ``[D_i, 1, M, M]``; ``labels`` per image."""
    classes = torch.cat(list(labels))
    probabilities = mask_logits[torch.arange(classes.shape[0], device=classes.device), classes].sigmoid()
    # shapes, not len(): an exported graph keeps them symbolic
    return list(probabilities[:, None].split([label.shape[0] for label in labels]))


def _expand_boxes(boxes: Tensor, scale: float) -> Tensor:
    """xyxy boxes scaled by ``scale`` about their centres."""
    centres = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    half_sizes = (boxes[:, 2:] - boxes[:, :2]) * 0.5 * scale
    return torch.cat([centres - half_sizes, centres + half_sizes], dim=1)


def _resize_taps(start: Tensor, length: Tensor, source_size: int, extent: int) -> tuple[Tensor, Tensor]:
    """Along one axis, for every detection and image pixel p = 0 .. extent - 1: the two source cells ``[D, extent,
    2]`` and their weights of a bilinear resize (align_corners=False, as ``F.interpolate``) of ``source_size``
    cells onto the ``length`` pixels from ``start``; weights are 0 for pixels outside that span.

        i = p - start,   r = source_size / length,   s = max(r (i + 1/2) - 1/2, 0)
        low = min(floor(s), source_size - 1),   high = min(low + 1, source_size - 1),   λ = s - low
    """
    index = torch.arange(extent, device=start.device)[None] - start[:, None]
    ratio = source_size / length.to(torch.float32)[:, None]  # in float32, as F.interpolate's CPU kernel
    source = (ratio * (index.to(torch.float32) + 0.5) - 0.5).clamp_min(0)
    low = source.floor().long().clamp(0, source_size - 1)
    fraction = (source - low.to(torch.float32)).clamp(0, 1)
    inside = (index >= 0) & (index < length[:, None])
    cells = torch.stack([low, (low + 1).clamp_max(source_size - 1)], dim=-1)
    weights = torch.stack([1 - fraction, fraction], dim=-1) * inside[..., None]
    return cells, weights


def paste_masks_in_image(masks: Tensor, boxes: Tensor, image_shape: tuple[int, int], padding: int = 1) -> Tensor:
    """Masks ``[D, 1, M, M]`` pasted into an image of ``image_shape = (H, W)`` at their boxes ``[D, 4]``:
    ``[D, 1, H, W]`` (module docstring). Each mask is padded by ``padding`` pixels and its box scaled by
    (M + 2 padding) / M about the centre, then truncated to integer pixels x1, y1, x2, y2, as torchvision does;
    the padded mask is resized bilinearly onto the box's max(x2 - x1 + 1, 1) x max(y2 - y1 + 1, 1) pixels
    from (x1, y1), and the part inside the image kept."""
    shapes_fit = masks.dim() == 4 and masks.shape[1] == 1 and boxes.dim() == 2 and boxes.shape[1] == 4
    if not shapes_fit or boxes.shape[0] != masks.shape[0]:
        raise ValueError(
            f"masks, boxes: expected [D, 1, M, M] and [D, 4], got {list(masks.shape)} and {list(boxes.shape)}"
        )
    height, width = image_shape
    size = masks.shape[-1]
    padded = F.pad(masks[:, 0], (padding,) * 4)  # [D, S, S], S = M + 2 padding
    source = padded.shape[-1]
    corners = _expand_boxes(boxes, (size + 2 * padding) / size).to(torch.int64)  # truncated towards 0
    # Both ends inclusive, at least one pixel: the resized mask's size.
    lengths = (corners[:, 2:] - corners[:, :2] + 1).clamp_min(1)
    x_cells, x_weights = _resize_taps(corners[:, 0], lengths[:, 0], source, width)
    y_cells, y_weights = _resize_taps(corners[:, 1], lengths[:, 1], source, height)
    # Separable, as F.interpolate: along x within each source row, then along y, each a weighted sum of two taps
    # (its terms in the kernel's order); in one batch, so that the number of detections may stay symbolic (export).
    x_weights, y_weights = x_weights.to(padded), y_weights.to(padded)
    rows = sum(
        padded.gather(2, x_cells[:, None, :, tap].expand(-1, source, -1)) * x_weights[:, None, :, tap] for tap in (0, 1)
    )  # [D, S, W]
    pasted = sum(
        rows.gather(1, y_cells[:, :, tap, None].expand(-1, -1, width)) * y_weights[:, :, tap, None] for tap in (0, 1)
    )  # [D, H, W]
    return pasted[:, None]
