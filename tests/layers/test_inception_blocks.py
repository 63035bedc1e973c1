"""Inception and Xception blocks against torchvision/timm blocks and the closed forms in their docstrings."""

from functools import partial
from importlib import import_module

import pytest
import timm.layers
import torch
from reference_models import randomize_

import zoo
from zoo.analysis.formulas import layer_macs
from zoo.layers.inception import (
    FilterConcat,
    Inception,
    InceptionA,
    InceptionAux,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
    InceptionV3Aux,
    InceptionV4A,
    InceptionV4B,
    InceptionV4C,
    InceptionV4Mixed3a,
    InceptionV4Mixed4a,
    InceptionV4Mixed5a,
    InceptionV4ReductionA,
    InceptionV4ReductionB,
)
from zoo.layers.xception import SeparableConv2d, XceptionBlock

# The reference modules (by path: their packages also export builder functions of the same names).
tv_googlenet = import_module("torchvision.models.googlenet")
tv_v3 = import_module("torchvision.models.inception")
timm_v4 = import_module("timm.models.inception_v4")
timm_xception = import_module("timm.models.xception")

# timm's Inception-v4 builds its blocks with this conv (valid by default, BN eps 1e-3).
TIMM_V4_CONV = partial(
    timm.layers.ConvNormAct,
    padding=0,
    norm_layer="batchnorm2d",
    act_layer="relu",
    norm_kwargs=dict(eps=1e-3),
    act_kwargs=dict(inplace=True),
)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def conv_linear_macs(module, x):
    """Run ``module`` on ``x`` and return (output, MACs per sample of its Conv2d and Linear layers), each layer
    counted by the textbook formula (zoo.analysis.formulas, itself checked against fvcore in tests/analysis)."""
    total = []
    hooks = [
        layer.register_forward_hook(lambda m, args, out: total.append(layer_macs(m, args[0].shape, out.shape)))
        for layer in module.modules()
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    try:
        with torch.no_grad():
            output = module(x)
    finally:
        for hook in hooks:
            hook.remove()
    return output, sum(total) // x.shape[0]


def reduced(size):
    """Output side of a 3×3/2 valid-padded reduction."""
    return (size - 3) // 2 + 1


# (ours, reference, input (C, H, W), params closed form, conv+linear MACs closed form (C, P_in, P))
CASES = {
    "googlenet_inception": (
        lambda: Inception(192, 64, 96, 128, 16, 32, 32),
        lambda: tv_googlenet.Inception(192, 64, 96, 128, 16, 32, 32),
        (192, 6, 6),
        lambda c: c * (64 + 96 + 16 + 32) + 9 * (96 * 128 + 16 * 32) + 2 * (64 + 96 + 128 + 16 + 32 + 32),
        lambda c, p_in, p: p * (c * (64 + 96 + 16 + 32) + 9 * (96 * 128 + 16 * 32)),
    ),
    "googlenet_aux": (
        lambda: InceptionAux(512, 10),
        lambda: tv_googlenet.InceptionAux(512, 10),
        (512, 6, 6),
        lambda c: 128 * c + 256 + 2048 * 1024 + 1024 + 1024 * 10 + 10,
        lambda c, p_in, p: 16 * 128 * c + 2048 * 1024 + 1024 * 10,
    ),
    "v3_a": (
        lambda: InceptionA(192, pool_features=32),
        lambda: tv_v3.InceptionA(192, pool_features=32),
        (192, 5, 5),
        lambda c: c * (176 + 32) + 215040 + 2 * (432 + 32),
        lambda c, p_in, p: p * (c * (176 + 32) + 215040),
    ),
    "v3_b": (
        lambda: InceptionB(288),
        lambda: tv_v3.InceptionB(288),
        (288, 7, 7),
        lambda c: 3520 * c + 138240 + 1280,
        lambda c, p_in, p: p_in * (64 * c + 55296) + p * (3456 * c + 82944),
    ),
    "v3_c": (
        lambda: InceptionC(768, channels_7x7=160),
        lambda: tv_v3.InceptionC(768, channels_7x7=160),
        (768, 5, 5),
        lambda c: c * (384 + 2 * 160) + 28 * 160**2 + 2688 * 160 + 2 * (768 + 6 * 160),
        lambda c, p_in, p: p * (c * (384 + 2 * 160) + 28 * 160**2 + 2688 * 160),
    ),
    "v3_d": (
        lambda: InceptionD(768),
        lambda: tv_v3.InceptionD(768),
        (768, 7, 7),
        lambda c: 384 * c + 1400832 + 2560,
        lambda c, p_in, p: p_in * (384 * c + 516096) + p * 884736,
    ),
    "v3_e": (
        lambda: InceptionE(1280),
        lambda: tv_v3.InceptionE(1280),
        (1280, 3, 3),
        lambda c: 1344 * c + 3317760 + 6528,
        lambda c, p_in, p: p * (1344 * c + 3317760),
    ),
    "v3_aux": (
        lambda: InceptionV3Aux(768, 10),
        lambda: tv_v3.InceptionAux(768, 10),
        (768, 17, 17),  # the smallest map its valid pool and 5×5 conv take: P_a = 25, P_c = 1
        lambda c: 128 * c + 256 + 2457600 + 1536 + 768 * 10 + 10,
        lambda c, p_in, p: 25 * 128 * c + 1 * 2457600 + 768 * 10,
    ),
    "v4_mixed3a": (
        InceptionV4Mixed3a,
        lambda: timm_v4.Mixed3a(TIMM_V4_CONV),
        (64, 9, 9),
        lambda c: 864 * c + 192,
        lambda c, p_in, p: p * 864 * c,
    ),
    "v4_mixed4a": (
        InceptionV4Mixed4a,
        lambda: timm_v4.Mixed4a(TIMM_V4_CONV),
        (160, 7, 7),
        lambda c: 128 * c + 167936 + 896,
        lambda c, p_in, p: p_in * (128 * c + 57344) + p * 110592,  # valid 3×3s: 7² → 5²
    ),
    "v4_mixed5a": (
        InceptionV4Mixed5a,
        lambda: timm_v4.Mixed5a(TIMM_V4_CONV),
        (192, 9, 9),
        lambda c: 1728 * c + 384,
        lambda c, p_in, p: p * 1728 * c,
    ),
    "v4_a": (
        InceptionV4A,
        lambda: timm_v4.InceptionA(TIMM_V4_CONV),
        (384, 5, 5),
        lambda c: 320 * c + 193536 + 1216,
        lambda c, p_in, p: p * (320 * c + 193536),
    ),
    "v4_reduction_a": (
        InceptionV4ReductionA,
        lambda: timm_v4.ReductionA(TIMM_V4_CONV),
        (384, 7, 7),
        lambda c: 3648 * c + 903168 + 2112,
        lambda c, p_in, p: p_in * (192 * c + 387072) + p * (3456 * c + 516096),
    ),
    "v4_b": (
        InceptionV4B,
        lambda: timm_v4.InceptionB(TIMM_V4_CONV),
        (1024, 3, 3),
        lambda c: 896 * c + 2014208 + 4544,
        lambda c, p_in, p: p * (896 * c + 2014208),
    ),
    "v4_reduction_b": (
        InceptionV4ReductionB,
        lambda: timm_v4.ReductionB(TIMM_V4_CONV),
        (1024, 5, 5),
        lambda c: 448 * c + 2285568 + 3072,
        lambda c, p_in, p: p_in * (448 * c + 1032192) + p * 1253376,
    ),
    "v4_c": (
        InceptionV4C,
        lambda: timm_v4.InceptionC(TIMM_V4_CONV),
        (1536, 3, 3),
        lambda c: 1280 * c + 2580480 + 6528,
        lambda c, p_in, p: p * (1280 * c + 2580480),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_block_matches_reference_and_closed_forms(case):
    make_ours, make_reference, (channels, height, width), params, macs = CASES[case]
    reference = randomize_(make_reference()).eval()
    ours = make_ours().eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    x = torch.randn(2, channels, height, width)
    with torch.no_grad():
        expected = reference(x)
    actual, macs_counted = conv_linear_macs(ours, x)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    if hasattr(ours, "out_channels"):
        assert actual.shape[1] == ours.out_channels

    assert n_params(ours) == params(channels)
    p_in, p = height * width, (actual.shape[-1] ** 2 if actual.ndim == 4 else None)
    assert macs_counted == macs(channels, p_in, p)


def test_reductions_are_valid_padded():
    x = torch.randn(1, 288, 35, 35)
    assert InceptionB(288)(x).shape[-1] == reduced(35) == 17


def test_filter_concat_needs_a_branch():
    with pytest.raises(ValueError, match="at least one branch"):
        FilterConcat()


def test_separable_conv_matches_timm_and_closed_form():
    reference = randomize_(timm_xception.SeparableConv2d(32, 64, 3, 1, 1)).eval()
    ours = SeparableConv2d(32, 64, 3, padding=1).eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    x = torch.randn(2, 32, 6, 6)
    with torch.no_grad():
        expected = reference(x)
    actual, macs = conv_linear_macs(ours, x)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert n_params(ours) == 9 * 32 + 32 * 64
    assert macs == 36 * (9 * 32 + 32 * 64)


@pytest.mark.parametrize(
    "in_ch, out_ch, reps, stride, start_with_relu, grow_first",
    [(64, 128, 2, 2, False, True), (728, 728, 3, 1, True, True), (728, 1024, 2, 2, True, False)],
)
def test_xception_block_matches_timm_and_closed_form(in_ch, out_ch, reps, stride, start_with_relu, grow_first):
    reference = timm_xception.Block(in_ch, out_ch, reps, stride, start_with_relu=start_with_relu, grow_first=grow_first)
    randomize_(reference).eval()
    ours = XceptionBlock(in_ch, out_ch, reps, stride, start_with_relu=start_with_relu, grow_first=grow_first).eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    side = 5
    x = torch.randn(2, in_ch, side, side)
    with torch.no_grad():
        expected = reference(x)
    actual, macs_counted = conv_linear_macs(ours, x)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)

    # Closed form from the docstring, over the separable convs' widths (a_r → b_r).
    if grow_first:
        widths = [(in_ch, out_ch)] + [(out_ch, out_ch)] * (reps - 1)
    else:
        widths = [(in_ch, in_ch)] * (reps - 1) + [(in_ch, out_ch)]
    projection = in_ch != out_ch or stride != 1
    params = sum(9 * a + a * b + 2 * b for a, b in widths) + (in_ch * out_ch + 2 * out_ch if projection else 0)
    assert n_params(ours) == params
    p_in, p = side * side, actual.shape[-1] ** 2
    macs = p_in * sum(9 * a + a * b for a, b in widths) + (p * in_ch * out_ch if projection else 0)
    assert macs_counted == macs


def test_xception_block_validates_reps():
    with pytest.raises(ValueError, match="reps must be a positive int"):
        XceptionBlock(64, 128, 0)
