"""FPN backbones against torchvision.models.detection.backbone_utils.resnet_fpn_backbone."""

import math
import re
from functools import partial

import pytest
import torch
from reference_models import randomize_
from torch import nn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone as reference_resnet_fpn_backbone
from torchvision.ops import feature_pyramid_network as reference_fpn
from torchvision.ops.misc import FrozenBatchNorm2d as ReferenceFrozenBatchNorm2d

import zoo
from zoo.layers.fpn import LastLevelP6P7
from zoo.layers.frozen_batch_norm import FrozenBatchNorm2d
from zoo.models.detection.backbone import (
    BackboneWithFPN,
    backbone_with_fpn,
    nest_reference_renames,
    resnet_fpn_backbone,
)
from zoo.weights import map_reference_keys


def _counts(model: nn.Module) -> tuple[int, int]:
    return (
        sum(p.numel() for p in model.parameters()),
        sum(p.numel() for p in model.parameters() if p.requires_grad),
    )


def _assert_same_outputs(ours: nn.Module, reference: nn.Module, size: tuple[int, int]) -> None:
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        expected, actual = reference(x), ours(x)
    assert list(actual) == list(expected)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=1e-5)


def _loaded(build, reference: nn.Module) -> nn.Module:
    """Our model with the reference's weights; built on the meta device, as every value is then loaded."""
    with torch.device("meta"):
        ours = build()
    return zoo.load_reference_weights(ours.to_empty(device="cpu"), reference.state_dict())


def test_resnet50_fpn_matches_torchvision():
    """torchvision's Faster R-CNN backbone: frozen BN, layer2..4 trainable, C2..C5 + "pool"."""
    reference = reference_resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=3)
    ours = _loaded(lambda: resnet_fpn_backbone("resnet50", trainable_layers=3), randomize_(reference))
    # 26,799,296 parameters, of which the FPN's 3,344,384 and layer2..4's are trainable
    assert _counts(ours) == _counts(reference) == (26_799_296, 26_576_896)
    assert ours.out_channels == reference.out_channels == 256
    _assert_same_outputs(ours.eval(), reference.eval(), (64, 64))  # levels "0".."3" and "pool"


@pytest.mark.parametrize(
    "norm_layer, trainable_layers",
    [(FrozenBatchNorm2d, k) for k in range(6)] + [(nn.BatchNorm2d, k) for k in (3, 4, 5)],
    ids=[f"frozen_bn-{k}" for k in range(6)] + [f"batch_norm-{k}" for k in (3, 4, 5)],
)
def test_trainable_layers_match_torchvision(norm_layer, trainable_layers):
    reference_norm = ReferenceFrozenBatchNorm2d if norm_layer is FrozenBatchNorm2d else norm_layer
    with torch.device("meta"):  # nothing to compute: skip the initialisation
        reference = reference_resnet_fpn_backbone(
            backbone_name="resnet18", weights=None, trainable_layers=trainable_layers, norm_layer=reference_norm
        )
        ours = resnet_fpn_backbone("resnet18", trainable_layers=trainable_layers, norm_layer=norm_layer)
    assert _counts(ours) == _counts(reference)
    # the same parameters are frozen, name for name
    zoo_key = dict(zip(reference.state_dict(), map_reference_keys(ours, reference.state_dict()), strict=True))
    reference_trainable = {zoo_key[name] for name, p in reference.named_parameters() if p.requires_grad}
    assert reference_trainable == {name for name, p in ours.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
@pytest.mark.parametrize("norm_layer", [FrozenBatchNorm2d, nn.BatchNorm2d], ids=["frozen_bn", "batch_norm"])
def test_parameter_counts_match_torchvision(name, norm_layer):
    reference_norm = ReferenceFrozenBatchNorm2d if norm_layer is FrozenBatchNorm2d else norm_layer
    with torch.device("meta"):
        reference = reference_resnet_fpn_backbone(backbone_name=name, weights=None, norm_layer=reference_norm)
        ours = resnet_fpn_backbone(name, norm_layer=norm_layer)
    assert _counts(ours) == _counts(reference)


def test_retinanet_layout_matches_torchvision():
    """C3..C5 and P6/P7 from C5 (RetinaNet), through the generic builder with ordinary batch norm."""
    reference = reference_resnet_fpn_backbone(
        backbone_name="resnet18",
        weights=None,
        norm_layer=nn.BatchNorm2d,
        trainable_layers=5,
        returned_layers=[2, 3, 4],
        extra_blocks=reference_fpn.LastLevelP6P7(512, 256),
    )
    build = partial(
        backbone_with_fpn, "resnet18", out_indices=(1, 2, 3), extra_blocks=LastLevelP6P7(512, 256), trainable_layers=5
    )
    ours = _loaded(build, randomize_(reference))
    assert _counts(ours) == _counts(reference)
    _assert_same_outputs(ours.eval(), reference.eval(), (64, 96))  # levels "0".."2", "p6", "p7"


def test_generic_backbone_levels():
    """Every stage at stride ≥ 4, each level ⌈H / stride⌉ × ⌈W / stride⌉ with 256 channels, then "pool"."""
    backbone = backbone_with_fpn("mobilenet_v3_large", norm_layer=FrozenBatchNorm2d, trainable_layers=0).eval()
    strides = backbone.body.feature_info.reduction()
    assert strides == [4, 8, 16, 32]
    height, width = 64, 96
    outputs = backbone(torch.randn(1, 3, height, width))
    expected = [(1, 256, math.ceil(height / s), math.ceil(width / s)) for s in [*strides, 64]]
    assert list(outputs) == ["0", "1", "2", "3", "pool"]
    assert [tuple(v.shape) for v in outputs.values()] == expected
    # trainable_layers=0 freezes the whole body: only the FPN learns, Σ(C_i·256 + 256) + 4·(9·256² + 256)
    channels = backbone.body.feature_info.channels()
    assert _counts(backbone)[1] == sum(c * 256 + 256 for c in channels) + 4 * (9 * 256**2 + 256)


def test_nest_reference_renames():
    renames = [(r"^features\.0\.", "stem."), (r"(^|\.)bn(\d)\.", r"\1conv\2.bn.")]
    nested = nest_reference_renames("body", renames)
    assert nested == [(r"^body\.features\.0\.", "body.stem."), renames[1]]
    backbone = resnet_fpn_backbone("resnet18")
    for key in ["body.bn1.weight", "fpn.inner_blocks.2.0.bias", "body.layer2.0.downsample.1.running_var"]:
        for pattern, repl in backbone.reference_renames:
            key = re.sub(pattern, repl, key)
        assert key in backbone.state_dict()


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: resnet_fpn_backbone("mobilenet_v3_large"), ValueError, "ResNet-family"),
        (lambda: resnet_fpn_backbone("resnet18", returned_layers=(0, 1)), ValueError, r"\[1, 4\]"),
        (lambda: resnet_fpn_backbone("resnet18", returned_layers=(5,)), ValueError, r"\[1, 4\]"),
        (lambda: resnet_fpn_backbone("resnet18", trainable_layers=6), ValueError, r"\[0, 5\]"),
        (lambda: resnet_fpn_backbone("resnet18", trainable_layers=2.0), TypeError, "int"),
        (lambda: backbone_with_fpn("mobilenet_v3_large", trainable_layers=7), ValueError, r"\[0, 6\]"),
        (lambda: backbone_with_fpn("resnet18", out_indices=(4,)), ValueError, "out of range"),
        (lambda: backbone_with_fpn("no_such_net"), ValueError, "unknown model"),
        (lambda: BackboneWithFPN(nn.Conv2d(3, 8, 3)), TypeError, "features_only"),
    ],
)
def test_bad_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()
