"""Detection backbones: a registered classifier's stage maps with a Feature Pyramid Network on top.

    image → body (classifier cut after its deepest returned stage) → {"0": C_a, "1": C_b, ...}
          → fpn → {"0": P_a, "1": P_b, ..., "pool"}     (every level ``out_channels`` wide)

As torchvision's ``BackboneWithFPN``: the returned stages are named "0", "1", ... shallowest first, and
the FPN adds a subsampled "pool" level unless another extra block is given. ``resnet_fpn_backbone``
is torchvision's function of that name (frozen batch norm, the first 5 − ``trainable_layers`` stages
frozen, C2..C5 returned), so a torchvision ``model.backbone.state_dict()`` loads with
``zoo.load_reference_weights``. ``backbone_with_fpn`` does the same for any registered classifier
that declares ``feature_info``.

Freezing counts stages from the deepest: stage k is the top-level children up to and including
feature module k; the children before the first feature module (the stem) are a stage of their own.
For a ResNet that is conv1 (+bn1, max-pool) | layer1 | layer2 | layer3 | layer4, torchvision's order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import nn

from zoo.layers.fpn import FPN_REFERENCE_RENAMES, ExtraFPNBlock, FeaturePyramidNetwork, LastLevelMaxPool
from zoo.layers.frozen_batch_norm import FrozenBatchNorm2d
from zoo.models.base import ImageClassifier
from zoo.models.features import FeatureListNet
from zoo.models.resnet import ResNet
from zoo.registry import create_model
from zoo.weights import nest_reference_renames

__all__ = ["BackboneWithFPN", "backbone_body", "backbone_with_fpn", "resnet_fpn_backbone"]


def _stages(model: ImageClassifier) -> list[list[str]]:
    """The names of ``model``'s top-level children on the feature path, grouped into stages (module docstring)."""
    feature_modules = model.feature_info.module_name()
    stages: list[list[str]] = []
    pending: list[str] = []
    for name, _ in model.named_children():
        if name in model.feature_skip:
            continue
        if name not in feature_modules:
            pending.append(name)
            continue
        if not stages and pending:
            stages.append(pending)  # the stem
            pending = []
        stages.append([*pending, name])
        pending = []
        if name == feature_modules[-1]:
            break
    return stages


def _freeze(model: ImageClassifier, trainable_layers: int | None) -> None:
    """Set ``requires_grad=False`` on every parameter outside the last ``trainable_layers`` stages."""
    if trainable_layers is None:
        return
    if isinstance(trainable_layers, bool) or not isinstance(trainable_layers, int):
        raise TypeError(f"trainable_layers must be an int or None, got {type(trainable_layers).__name__}")
    stages = _stages(model)
    if not 0 <= trainable_layers <= len(stages):
        raise ValueError(
            f"trainable_layers must be in [0, {len(stages)}] for {type(model).__name__} (stages "
            f"{[' + '.join(stage) for stage in stages]}), got {trainable_layers}"
        )
    trainable = {name for stage in stages[len(stages) - trainable_layers :] for name in stage}
    for name, child in model.named_children():
        if name not in trainable:
            child.requires_grad_(False)


class BackboneWithFPN(nn.Module):
    """``body`` (a features_only network) followed by a :class:`FeaturePyramidNetwork` over its maps.

    ``forward(images)`` returns an ordered dict ``{"0": P, "1": P, ..., extra levels}``, shallowest first,
    each with ``out_channels`` channels. The FPN's input widths come from ``body.feature_info``.
    """

    def __init__(
        self,
        body: FeatureListNet,
        out_channels: int = 256,
        extra_blocks: ExtraFPNBlock | None = None,
        norm_layer: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(body, FeatureListNet):
            raise TypeError(
                "body must be a features_only network (zoo.create_model(name, features_only=True)), "
                f"got {type(body).__name__}"
            )
        self.body = body
        self.fpn = FeaturePyramidNetwork(
            body.feature_info.channels(),
            out_channels,
            extra_blocks=LastLevelMaxPool() if extra_blocks is None else extra_blocks,
            norm_layer=norm_layer,
        )
        self.out_channels = out_channels
        self.reference_renames = nest_reference_renames("body", body.reference_renames) + nest_reference_renames(
            "fpn", FPN_REFERENCE_RENAMES
        )

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.body(x)
        return self.fpn(OrderedDict((str(index), feature) for index, feature in enumerate(features)))


def _with_fpn(
    model: ImageClassifier,
    out_indices: Sequence[int],
    trainable_layers: int | None,
    extra_blocks: ExtraFPNBlock | None,
    out_channels: int,
    fpn_norm_layer: Callable[[int], nn.Module] | None,
) -> BackboneWithFPN:
    _freeze(model, trainable_layers)
    body = FeatureListNet(model, out_indices=out_indices)
    return BackboneWithFPN(body, out_channels, extra_blocks=extra_blocks, norm_layer=fpn_norm_layer)


def _classifier(name: str, norm_layer: Callable[[int], nn.Module] | None, model_kwargs: dict) -> ImageClassifier:
    if norm_layer is not None:
        model_kwargs["norm_layer"] = norm_layer
    model_kwargs.setdefault("num_classes", 0)  # the head is dropped anyway
    return create_model(name, **model_kwargs)


def backbone_body(
    name: str,
    *,
    out_indices: Sequence[int] | None = None,
    trainable_layers: int | None = None,
    norm_layer: Callable[[int], nn.Module] | None = None,
    **model_kwargs,
) -> FeatureListNet:
    """The stage maps of a registered classifier without a pyramid (DETR reads only the deepest): ``out_indices``,
    ``trainable_layers`` and ``norm_layer`` as in :func:`backbone_with_fpn`; default every stage."""
    model = _classifier(name, norm_layer, model_kwargs)
    _freeze(model, trainable_layers)
    return FeatureListNet(model, out_indices=out_indices)


def backbone_with_fpn(
    name: str,
    *,
    out_indices: Sequence[int] | None = None,
    trainable_layers: int | None = None,
    extra_blocks: ExtraFPNBlock | None = None,
    norm_layer: Callable[[int], nn.Module] | None = None,
    out_channels: int = 256,
    fpn_norm_layer: Callable[[int], nn.Module] | None = None,
    **model_kwargs,
) -> BackboneWithFPN:
    """An FPN backbone on any registered classifier with ``feature_info`` (``"resnet18"``, ``"mobilenet_v3_large"``).

    ``out_indices`` selects the stages fed to the FPN (indices into the model's ``feature_info``; default:
    every stage at stride ≥ 4, C2..C5 as in Lin et al.). ``trainable_layers`` keeps the deepest stages
    trainable and freezes the rest (default None: nothing frozen). ``norm_layer`` replaces the classifier's
    batch norm (e.g. :class:`FrozenBatchNorm2d`; default: the classifier's own); ``fpn_norm_layer`` adds a
    norm to the FPN's convolutions. Other keyword arguments go to the classifier's builder.
    """
    model = _classifier(name, norm_layer, model_kwargs)
    if out_indices is None:
        out_indices = [i for i, stride in enumerate(model.feature_info.reduction()) if stride >= 4]
    return _with_fpn(model, out_indices, trainable_layers, extra_blocks, out_channels, fpn_norm_layer)


def resnet_fpn_backbone(
    name: str = "resnet50",
    *,
    trainable_layers: int = 3,
    returned_layers: Sequence[int] = (1, 2, 3, 4),
    extra_blocks: ExtraFPNBlock | None = None,
    norm_layer: Callable[[int], nn.Module] = FrozenBatchNorm2d,
    out_channels: int = 256,
    fpn_norm_layer: Callable[[int], nn.Module] | None = None,
    **model_kwargs,
) -> BackboneWithFPN:
    """torchvision's ``resnet_fpn_backbone`` on a zoo ResNet/ResNeXt/Wide ResNet.

    ``returned_layers`` counts ResNet stages from 1 (layer1 = C2, stride 4 … layer4 = C5, stride 32);
    ``trainable_layers`` in [0, 5] keeps layer4, layer3, ... (5: the stem too) trainable; ``extra_blocks``
    defaults to :class:`LastLevelMaxPool` (Faster R-CNN); RetinaNet uses ``returned_layers=(2, 3, 4)``
    with ``LastLevelP6P7``.
    """
    if (
        isinstance(returned_layers, (str, bytes, int))
        or len(returned_layers) == 0
        or not all(isinstance(layer, int) and 1 <= layer <= 4 for layer in returned_layers)
    ):
        raise ValueError(f"returned_layers must be ResNet stages in [1, 4], e.g. (1, 2, 3, 4), got {returned_layers!r}")
    model = _classifier(name, norm_layer, model_kwargs)
    if not isinstance(model, ResNet):
        raise ValueError(
            f"resnet_fpn_backbone needs a ResNet-family model (resnet*, resnext*, wide_resnet*), got {name!r} "
            f"({type(model).__name__}); use backbone_with_fpn for other backbones"
        )
    out_indices = [layer - 1 for layer in returned_layers]
    return _with_fpn(model, out_indices, trainable_layers, extra_blocks, out_channels, fpn_norm_layer)
