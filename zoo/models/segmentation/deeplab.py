"""DeepLabv3 (Chen et al., 2017, arXiv:1706.05587) as torchvision's ``models.segmentation.deeplabv3``, and
DeepLabv3+ (Chen et al., 2018, arXiv:1802.02611).

DeepLabv3: a classifier whose last strides are traded for dilation (output stride s = 8 or 16) keeps a
dense map; ASPP (``zoo.layers.aspp``) looks at it at several rates; logits are upsampled to the input:

    image → backbone (output stride s) → ASPP → 3×3 conv-BN-ReLU (256) → 1×1 conv (classes) → bilinear ×s
    auxiliary (training aid): a shallower map → FCN head (3×3 conv-BN-ReLU to C_in/4, dropout 0.1, 1×1 conv)
                → bilinear to the input size

DeepLabv3+ adds a decoder that restores boundaries from a stride-4 map (ResNet's layer1, 256 channels):

    ASPP (s = 16) → bilinear ×4 ─┐
    layer1 → 1×1 conv-BN-ReLU (48) ─┴→ concat (304) → 2 × [3×3 conv-BN-ReLU (256)] → 1×1 conv → bilinear ×4

Every upsampling is bilinear with ``align_corners=False`` to the size of the map it joins (or the input),
so odd input sizes come back at their own size. ``forward`` returns ``{"out": logits, "aux": logits}``
(``"aux"`` only with ``aux_loss=True``), both N × classes × H × W, as torchvision's models do.

Head parameters for C classes (ASPP's in its module docstring, 256 channels throughout):
    DeepLabHead(C_in)   = ASPP(C_in) + 9·256² + 2·256 + 256·C + C
    FCNHead(C_in)       = 9·C_in·(C_in/4) + 2·(C_in/4) + (C_in/4)·C + C
    DeepLabV3PlusHead   = ASPP(C_in) + 48·C_low + 2·48 + 9·304·256 + 9·256² + 4·256 + 256·C + C
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from zoo.layers.aspp import ASPP, aspp_rates
from zoo.layers.conv_norm_act import ConvNormAct
from zoo.models.base import check_image_batch
from zoo.models.features import FeatureListNet
from zoo.registry import create_model, register_model
from zoo.weights import nest_reference_renames

__all__ = ["DeepLabHead", "DeepLabV3", "DeepLabV3Plus", "DeepLabV3PlusHead", "FCNHead"]

# Output stride → ResNet's replace_stride_with_dilation for layer2..layer4.
DEEPLABV3_PAPER = "Chen et al. 2017, Rethinking Atrous Convolution (DeepLabv3), arXiv:1706.05587"
DEEPLABV3PLUS_PAPER = "Chen et al. 2018, Encoder-Decoder with Atrous Separable Convolution, arXiv:1802.02611"

NO_DOWNLOAD = {"weights_backbone": None}  # torchvision's builders fetch ImageNet backbone weights by default
_RESNET_DILATION = {8: [False, True, True], 16: [False, False, True]}


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_builder_args(num_classes: object, aux_loss: object) -> None:
    """Checked before the backbone is built, so that a typo fails at once."""
    _check_positive("num_classes", num_classes)
    if not isinstance(aux_loss, bool):
        raise TypeError(f"aux_loss must be a bool, got {aux_loss!r}")


def _tapped_forward(
    module: nn.Module, x: torch.Tensor, layers: Sequence[str], prefix: str = ""
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Run ``module``'s children in order and keep the outputs of ``layers`` (dotted names, e.g. ``"layer4"``
    or ``"stage3.0"``, a block inside a stage); stop once all are found. Returns (last output, found)."""
    found: dict[str, torch.Tensor] = {}
    # A loop over a handful of stages: a tap inside a stage needs that stage run block by block.
    for name, child in module.named_children():
        path = prefix + name
        inner = [layer for layer in layers if layer.startswith(f"{path}.")]
        if inner:
            x, deeper = _tapped_forward(child, x, inner, f"{path}.")
            found.update(deeper)
        else:
            x = child(x)
        if path in layers:
            found[path] = x
        if len(found) == len(layers):
            break
    return x, found


def _check_taps(backbone: nn.Module, layers: Sequence[str]) -> None:
    """Each tap must be a stage of the backbone or a block inside Sequential stages (see _tapped_forward)."""
    for layer in layers:
        try:
            backbone.get_submodule(layer)
        except AttributeError:
            stages = [name for name, _ in backbone.named_children()]
            raise ValueError(f"the backbone has no layer {layer!r}; its stages are {stages}") from None
        parts = layer.split(".")
        for depth in range(1, len(parts)):
            if not isinstance(backbone.get_submodule(".".join(parts[:depth])), nn.Sequential):
                raise ValueError(f"{layer!r} is not reached by running Sequential stages block by block")


def _upsample(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class DeepLabHead(nn.Module):
    """``aspp`` → ``conv`` (3×3 conv-BN-ReLU, 256) → ``logits`` (1×1 conv with bias) on the deepest map."""

    def __init__(
        self, in_channels: int, num_classes: int, atrous_rates: Sequence[int] = (12, 24, 36), channels: int = 256
    ) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes)
        self.aspp = ASPP(in_channels, atrous_rates, channels)
        self.conv = ConvNormAct(channels, channels, 3)
        self.logits = nn.Conv2d(channels, num_classes, 1)
        # torchvision's head is Sequential(ASPP, conv, BN, ReLU, conv).
        self.reference_renames = [
            (r"^0\.", "aspp."),
            *nest_reference_renames("aspp", self.aspp.reference_renames),
            (r"^1\.", "conv.conv."),
            (r"^2\.", "conv.bn."),
            (r"^4\.", "logits."),
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.conv(self.aspp(x)))


class FCNHead(nn.Module):
    """The auxiliary head: ``conv`` (3×3 conv-BN-ReLU to ``channels``, by default C_in/4 as torchvision's) →
    dropout 0.1 → ``logits`` (1×1 conv). PSPNet's final head is one with 512 channels."""

    def __init__(self, in_channels: int, num_classes: int, channels: int | None = None) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes)
        _check_positive("in_channels", in_channels)
        hidden = in_channels // 4 if channels is None else channels
        _check_positive("channels", hidden)
        self.conv = ConvNormAct(in_channels, hidden, 3)
        self.dropout = nn.Dropout(0.1)
        self.logits = nn.Conv2d(hidden, num_classes, 1)
        # torchvision's FCNHead is Sequential(conv, BN, ReLU, dropout, conv).
        self.reference_renames = [(r"^0\.", "conv.conv."), (r"^1\.", "conv.bn."), (r"^4\.", "logits.")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.dropout(self.conv(x)))


class DeepLabV3PlusHead(nn.Module):
    """The DeepLabv3+ decoder: ``aspp`` on the deep map, upsampled to the ``low_level`` map (1×1 conv-BN-ReLU
    to 48 channels), concatenated, ``fuse`` (two 3×3 conv-BN-ReLU, 256) → ``logits`` (1×1 conv)."""

    def __init__(
        self,
        in_channels: int,
        low_level_channels: int,
        num_classes: int,
        atrous_rates: Sequence[int] = (6, 12, 18),
        channels: int = 256,
        low_level_reduced: int = 48,
    ) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes)
        self.aspp = ASPP(in_channels, atrous_rates, channels)
        self.low_level = ConvNormAct(low_level_channels, low_level_reduced, 1)
        self.fuse = nn.Sequential(
            ConvNormAct(channels + low_level_reduced, channels, 3),
            ConvNormAct(channels, channels, 3),
        )
        self.logits = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor, low_level: torch.Tensor) -> torch.Tensor:
        low_level = self.low_level(low_level)
        x = _upsample(self.aspp(x), low_level.shape[-2:])
        return self.logits(self.fuse(torch.cat([x, low_level], dim=1)))


class DeepLabV3(nn.Module):
    """``backbone`` (a features_only network) → ``classifier`` on the ``out_layer`` map, and optionally
    ``aux_classifier`` on the ``aux_layer`` map; both upsampled to the input size (module docstring).

    ``backbone_renames`` are the torchvision key → zoo key rules for ``backbone.*`` keys; by default the
    backbone's own ``reference_renames`` under ``backbone.`` (right when torchvision wraps the classifier).
    """

    def __init__(
        self,
        backbone: FeatureListNet,
        classifier: nn.Module,
        aux_classifier: nn.Module | None = None,
        *,
        out_layer: str,
        aux_layer: str | None = None,
        backbone_renames: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, FeatureListNet):
            raise TypeError(f"backbone must be a features_only network, got {type(backbone).__name__}")
        if (aux_classifier is None) != (aux_layer is None):
            raise ValueError("aux_classifier and aux_layer must be given together")
        self.backbone = backbone
        self.classifier = classifier
        self.aux_classifier = aux_classifier
        self.out_layer, self.aux_layer = out_layer, aux_layer
        self.in_chans = backbone.in_chans
        self.output_stride = backbone.feature_info[-1]["reduction"]
        self._taps = [layer for layer in (out_layer, aux_layer) if layer is not None]
        _check_taps(backbone, self._taps)
        if backbone_renames is None:
            backbone_renames = nest_reference_renames("backbone", backbone.reference_renames)
        self.reference_renames = list(backbone_renames) + nest_reference_renames(
            "classifier", getattr(classifier, "reference_renames", [])
        )
        if aux_classifier is not None:
            renames = getattr(aux_classifier, "reference_renames", [])
            self.reference_renames += nest_reference_renames("aux_classifier", renames)

    def _logits(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classifier(features[self.out_layer])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_image_batch(x, self.in_chans, type(self).__name__, next(self.parameters()).dtype)
        _, features = _tapped_forward(self.backbone, x, self._taps)
        result = {"out": _upsample(self._logits(features), x.shape[-2:])}
        if self.aux_classifier is not None:
            result["aux"] = _upsample(self.aux_classifier(features[self.aux_layer]), x.shape[-2:])
        return result


class DeepLabV3Plus(DeepLabV3):
    """DeepLabV3 whose ``classifier`` also reads ``low_level_layer``: ``classifier(deep, low)``, a
    :class:`DeepLabV3PlusHead` here (LR-ASPP's head uses the same wiring)."""

    def __init__(
        self,
        backbone: FeatureListNet,
        classifier: nn.Module,
        aux_classifier: nn.Module | None = None,
        *,
        out_layer: str,
        low_level_layer: str,
        aux_layer: str | None = None,
        backbone_renames: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(
            backbone,
            classifier,
            aux_classifier,
            out_layer=out_layer,
            aux_layer=aux_layer,
            backbone_renames=backbone_renames,
        )
        self.low_level_layer = low_level_layer
        self._taps.append(low_level_layer)
        _check_taps(backbone, [low_level_layer])

    def _logits(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.classifier(features[self.out_layer], features[self.low_level_layer])


def _resnet_backbone(name: str, output_stride: int, out_indices: Sequence[int], in_chans: int) -> FeatureListNet:
    if type(output_stride) is not int or output_stride not in _RESNET_DILATION:
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride!r}")
    return create_model(
        name,
        features_only=True,
        out_indices=out_indices,
        replace_stride_with_dilation=_RESNET_DILATION[output_stride],
        in_chans=in_chans,
    )


def _deeplabv3_resnet(name: str, num_classes: int, aux_loss: bool, output_stride: int, in_chans: int) -> DeepLabV3:
    # torchvision: ASPP on layer4 (2048 channels), the auxiliary FCN head on layer3 (1024).
    _check_builder_args(num_classes, aux_loss)
    backbone = _resnet_backbone(name, output_stride, (2, 3), in_chans)
    aux_info, out_info = backbone.feature_info
    classifier = DeepLabHead(out_info["num_chs"], num_classes, aspp_rates(output_stride))
    aux_classifier = FCNHead(aux_info["num_chs"], num_classes) if aux_loss else None
    return DeepLabV3(
        backbone,
        classifier,
        aux_classifier,
        out_layer=out_info["module"],
        aux_layer=aux_info["module"] if aux_loss else None,
    )


# --- DeepLabv3 (torchvision's builders; output stride 8 on ResNets, 16 on MobileNetV3) -------------
@register_model(
    task="segmentation", input_size=520, reference="torchvision", reference_kwargs=NO_DOWNLOAD, paper=DEEPLABV3_PAPER
)
def deeplabv3_resnet50(
    *, num_classes: int = 21, aux_loss: bool = False, output_stride: int = 8, in_chans: int = 3
) -> DeepLabV3:
    return _deeplabv3_resnet("resnet50", num_classes, aux_loss, output_stride, in_chans)


@register_model(
    task="segmentation", input_size=520, reference="torchvision", reference_kwargs=NO_DOWNLOAD, paper=DEEPLABV3_PAPER
)
def deeplabv3_resnet101(
    *, num_classes: int = 21, aux_loss: bool = False, output_stride: int = 8, in_chans: int = 3
) -> DeepLabV3:
    return _deeplabv3_resnet("resnet101", num_classes, aux_loss, output_stride, in_chans)


@register_model(
    task="segmentation", input_size=520, reference="torchvision", reference_kwargs=NO_DOWNLOAD, paper=DEEPLABV3_PAPER
)
def deeplabv3_mobilenet_v3_large(*, num_classes: int = 21, aux_loss: bool = False, in_chans: int = 3) -> DeepLabV3:
    """As torchvision: the last stage dilated (output stride 16), ASPP on the last conv (960 channels) at
    rates (12, 24, 36) (torchvision keeps its default rates here), and the auxiliary head on the first block
    of the stride-8 stage (40 channels), the block that brings the map to stride 8."""
    _check_builder_args(num_classes, aux_loss)
    backbone = create_model("mobilenet_v3_large", features_only=True, dilated=True, in_chans=in_chans)
    out_info = backbone.feature_info[-1]
    aux_layer = next(info["module"] for info in backbone.feature_info if info["reduction"] == 8) + ".0"
    aux_channels = backbone.get_submodule(aux_layer).project.conv.out_channels
    classifier = DeepLabHead(out_info["num_chs"], num_classes, atrous_rates=(12, 24, 36))
    # torchvision's backbone is MobileNetV3's ``features`` Sequential itself: backbone.i = features.i.
    backbone_renames = [(r"^backbone\.(\d+)\.", r"backbone.features.\1.")]
    backbone_renames += nest_reference_renames("backbone", backbone.reference_renames)
    return DeepLabV3(
        backbone,
        classifier,
        FCNHead(aux_channels, num_classes) if aux_loss else None,
        out_layer=out_info["module"],
        aux_layer=aux_layer if aux_loss else None,
        backbone_renames=backbone_renames,
    )


# --- DeepLabv3+ (no torchvision counterpart) ----------------------------------------------------
@register_model(task="segmentation", input_size=512, paper=DEEPLABV3PLUS_PAPER)
def deeplabv3plus_resnet50(
    *, num_classes: int = 21, aux_loss: bool = False, output_stride: int = 16, in_chans: int = 3
) -> DeepLabV3Plus:
    """ResNet-50 at output stride 16 (ASPP rates 6, 12, 18), decoder on layer1 (stride 4, 256 channels);
    ``aux_loss`` adds torchvision's FCN head on layer3, as for DeepLabv3."""
    _check_builder_args(num_classes, aux_loss)
    backbone = _resnet_backbone("resnet50", output_stride, (0, 2, 3), in_chans)
    low_info, aux_info, out_info = backbone.feature_info
    classifier = DeepLabV3PlusHead(out_info["num_chs"], low_info["num_chs"], num_classes, aspp_rates(output_stride))
    return DeepLabV3Plus(
        backbone,
        classifier,
        FCNHead(aux_info["num_chs"], num_classes) if aux_loss else None,
        out_layer=out_info["module"],
        low_level_layer=low_info["module"],
        aux_layer=aux_info["module"] if aux_loss else None,
    )
