"""FeaturePyramidNetwork and its extra blocks against torchvision.ops.FeaturePyramidNetwork."""

from collections import OrderedDict

import pytest
import torch
from reference_models import randomize_
from torch import nn
from torchvision.ops import FeaturePyramidNetwork as ReferenceFPN
from torchvision.ops import feature_pyramid_network as reference_fpn

import zoo
from zoo.layers.fpn import FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7

IN_CHANNELS = [8, 16, 32]
OUT_CHANNELS = 12
# Odd sizes: 17 → 33 and 9 → 17 are not ×2, so the top-down maps must be resized to the lateral's size.
SIZES = [(33, 29), (17, 15), (9, 8)]

EXTRA_BLOCKS = {
    "none": (lambda: None, lambda: None),
    "max_pool": (LastLevelMaxPool, reference_fpn.LastLevelMaxPool),
    "p6p7_from_c5": (lambda: LastLevelP6P7(32, OUT_CHANNELS), lambda: reference_fpn.LastLevelP6P7(32, OUT_CHANNELS)),
    "p6p7_from_p5": (
        lambda: LastLevelP6P7(OUT_CHANNELS, OUT_CHANNELS),
        lambda: reference_fpn.LastLevelP6P7(OUT_CHANNELS, OUT_CHANNELS),
    ),
}


def _features(batch: int = 2) -> OrderedDict:
    return OrderedDict(
        (name, torch.randn(batch, channels, *size))
        for name, channels, size in zip(["c3", "c4", "c5"], IN_CHANNELS, SIZES, strict=True)
    )


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("norm_layer", [None, nn.BatchNorm2d], ids=["bias", "batch_norm"])
@pytest.mark.parametrize("extra", list(EXTRA_BLOCKS))
def test_matches_torchvision(extra, norm_layer):
    ours_extra, reference_extra = EXTRA_BLOCKS[extra]
    reference = ReferenceFPN(IN_CHANNELS, OUT_CHANNELS, reference_extra(), norm_layer=norm_layer)
    randomize_(reference).eval()
    ours = FeaturePyramidNetwork(IN_CHANNELS, OUT_CHANNELS, ours_extra(), norm_layer=norm_layer).eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    assert _count(ours) == _count(reference)

    features = _features()
    expected, actual = reference(features), ours(features)
    assert list(actual) == list(expected)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=1e-5)


@pytest.mark.parametrize("extra", list(EXTRA_BLOCKS))
def test_initialisation_matches_torchvision(extra):
    """Same seed → same weights: kaiming_uniform(a=1) on every conv, zero biases, in torchvision's order."""
    ours_extra, reference_extra = EXTRA_BLOCKS[extra]
    torch.manual_seed(7)
    ours = FeaturePyramidNetwork(IN_CHANNELS, OUT_CHANNELS, ours_extra())
    torch.manual_seed(7)
    reference = ReferenceFPN(IN_CHANNELS, OUT_CHANNELS, reference_extra())
    loaded = zoo.load_reference_weights(
        FeaturePyramidNetwork(IN_CHANNELS, OUT_CHANNELS, ours_extra()), reference.state_dict()
    )
    for name, value in ours.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name
        if name.endswith("bias"):
            assert not value.any()


def test_parameter_count_closed_form():
    # Σ_i (C_i·D + D) + L·(9·D² + D), then P6 (9·D·C5 + D) and P7 (9·D² + D).
    d = OUT_CHANNELS
    fpn = sum(c * d + d for c in IN_CHANNELS) + len(IN_CHANNELS) * (9 * d * d + d)
    assert _count(FeaturePyramidNetwork(IN_CHANNELS, d)) == fpn
    assert _count(FeaturePyramidNetwork(IN_CHANNELS, d, LastLevelMaxPool())) == fpn
    p6p7 = 9 * d * 32 + d + 9 * d * d + d
    assert _count(FeaturePyramidNetwork(IN_CHANNELS, d, LastLevelP6P7(32, d))) == fpn + p6p7
    # torchvision's Faster R-CNN FPN on ResNet-50 (C2..C5 = 256..2048 channels, D = 256): 3,344,384 parameters
    assert _count(FeaturePyramidNetwork([256, 512, 1024, 2048], 256, LastLevelMaxPool())) == 3_344_384


def test_output_sizes_and_pool_level():
    ours = FeaturePyramidNetwork(IN_CHANNELS, OUT_CHANNELS, LastLevelMaxPool())
    outputs = ours(_features())
    assert [tuple(v.shape) for v in outputs.values()] == [(2, OUT_CHANNELS, *size) for size in SIZES] + [
        (2, OUT_CHANNELS, 5, 4)  # ⌈9/2⌉ × ⌈8/2⌉
    ]
    assert torch.equal(outputs["pool"], outputs["c5"][..., ::2, ::2])


def test_single_level_is_two_convolutions():
    ours = FeaturePyramidNetwork([3], 4)
    x = torch.randn(1, 3, 5, 7)
    lateral, output = ours.inner_blocks[0].conv, ours.layer_blocks[0].conv
    expected = nn.functional.conv2d(
        nn.functional.conv2d(x, lateral.weight, lateral.bias), output.weight, output.bias, padding=1
    )
    torch.testing.assert_close(ours(OrderedDict(x=x))["x"], expected)


def test_p6p7_source_rule():
    assert LastLevelP6P7(256, 256).use_P5 and not LastLevelP6P7(2048, 256).use_P5
    assert not LastLevelP6P7(256, 256, use_P5=False).use_P5
    with pytest.raises(ValueError, match="use_P5"):
        LastLevelP6P7(2048, 256, use_P5=True)
    wrong_c5 = FeaturePyramidNetwork(IN_CHANNELS, OUT_CHANNELS, LastLevelP6P7(64, OUT_CHANNELS))
    with pytest.raises(ValueError, match="64 input channels"):
        wrong_c5(_features())


def test_empty_batch():
    outputs = FeaturePyramidNetwork(IN_CHANNELS, OUT_CHANNELS, LastLevelMaxPool())(_features(batch=0))
    assert [tuple(v.shape) for v in outputs.values()][-1] == (0, OUT_CHANNELS, 5, 4)


@pytest.mark.parametrize(
    "args, error",
    [
        (([], 4), ValueError),
        (([8, 0], 4), ValueError),
        ((8, 4), ValueError),
        (([8], 0), ValueError),
        (([8], 4, nn.Identity()), TypeError),
    ],
)
def test_bad_arguments(args, error):
    with pytest.raises(error):
        FeaturePyramidNetwork(*args)


def test_bad_input():
    fpn = FeaturePyramidNetwork(IN_CHANNELS, OUT_CHANNELS)
    features = _features()
    with pytest.raises(TypeError, match="ordered dict"):
        fpn(list(features.values()))
    with pytest.raises(ValueError, match="built for 3 maps, got 2"):
        fpn(OrderedDict(list(features.items())[:2]))
    features["c4"] = torch.randn(2, 17, 17, 15)
    with pytest.raises(ValueError, match=r"'c4' must be a \(N, 16, H, W\)"):
        fpn(features)
