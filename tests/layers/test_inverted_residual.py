"""DepthwiseSeparableConv and InvertedResidual against torchvision's and timm's blocks, fvcore and their
closed-form costs."""

from fractions import Fraction
from functools import partial

import pytest
import torch
from reference_models import randomize_
from timm.models._efficientnet_blocks import DepthwiseSeparableConv as TimmDepthwiseSeparableConv
from timm.models._efficientnet_blocks import SqueezeExcite as TimmSqueezeExcite
from torch import nn
from torchvision.models import efficientnet, mobilenetv2, mobilenetv3

import zoo
from zoo.analysis.flops import count_flops
from zoo.layers import SqueezeExcite, make_divisible
from zoo.layers.inverted_residual import DepthwiseSeparableConv, InvertedResidual


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def fvcore_conv_macs(module, x):
    """fvcore's count of the convolutions alone (BN and the SE's pooling left out)."""
    return sum(row.macs for row in count_flops(module, tuple(x.shape[1:])).layers if row.type == "Conv2d")


def assert_same_outputs(ours, reference, x):
    zoo.load_reference_weights(ours.eval(), randomize_(reference).eval().state_dict())
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("in_ch, out_ch, stride, ratio", [(32, 16, 1, 1), (16, 24, 2, 6), (24, 24, 1, 6)])
def test_matches_torchvision_mobilenet_v2_block(in_ch, out_ch, stride, ratio):
    reference = mobilenetv2.InvertedResidual(in_ch, out_ch, stride, expand_ratio=ratio)
    ours = InvertedResidual(in_ch, out_ch, stride, expanded_channels=in_ch * ratio)
    assert ours.use_residual == reference.use_res_connect
    assert_same_outputs(ours, reference, torch.randn(2, in_ch, 8, 8))


@pytest.mark.parametrize(
    "in_ch, kernel, expanded, out_ch, se, activation, stride, dilation",
    [
        (16, 3, 16, 16, True, "RE", 2, 1),  # no expansion, SE (V3-Small's first block)
        (24, 5, 72, 40, True, "RE", 2, 1),
        (80, 3, 184, 80, False, "HS", 1, 1),  # residual
        (160, 5, 960, 160, True, "HS", 1, 2),  # dilated (DeepLab's backbone)
    ],
)
def test_matches_torchvision_mobilenet_v3_block(in_ch, kernel, expanded, out_ch, se, activation, stride, dilation):
    config = mobilenetv3.InvertedResidualConfig(in_ch, kernel, expanded, out_ch, se, activation, stride, dilation, 1.0)
    norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
    reference = mobilenetv3.InvertedResidual(config, norm_layer)
    se_layer = partial(SqueezeExcite, rd_channels=make_divisible(expanded // 4, 8), gate_layer="hard_sigmoid")
    ours = InvertedResidual(
        in_ch, out_ch, 1 if dilation > 1 else stride, expanded_channels=expanded, kernel_size=kernel,
        dilation=dilation, se_layer=se_layer if se else None, norm_layer=norm_layer,
        act_layer="hard_swish" if activation == "HS" else "relu",
    )  # fmt: skip
    assert_same_outputs(ours, reference, torch.randn(2, in_ch, 8, 8))


@pytest.mark.parametrize("ratio, in_ch, out_ch, stride", [(1, 32, 16, 1), (6, 40, 40, 1), (6, 80, 112, 1)])
def test_matches_torchvision_mbconv_in_eval(ratio, in_ch, out_ch, stride):
    config = efficientnet.MBConvConfig(ratio, 5, stride, in_ch, out_ch, 1)
    reference = efficientnet.MBConv(config, stochastic_depth_prob=0.2, norm_layer=nn.BatchNorm2d)
    ours = InvertedResidual(
        in_ch, out_ch, stride, expanded_channels=make_divisible(in_ch * ratio, 8), kernel_size=5, act_layer="silu",
        se_layer=partial(SqueezeExcite, rd_channels=max(1, in_ch // 4), act_layer="silu"), drop_path_rate=0.2,
    )  # fmt: skip
    assert_same_outputs(ours, reference, torch.randn(2, in_ch, 8, 8))


def test_drop_path_drops_whole_samples_and_rescales_the_rest():
    block = randomize_(InvertedResidual(8, 8, expanded_channels=16, drop_path_rate=0.5)).train()
    for module in block.modules():  # BN on running statistics: the branch is then per-sample deterministic
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    x = torch.randn(64, 8, 4, 4)
    with torch.no_grad():
        block.use_residual = False
        branch = block(x)
        block.use_residual = True
        residual = block(x) - x
    dropped = residual.flatten(1).abs().amax(1) == 0
    assert 0 < dropped.sum() < 64  # some samples lose the branch, not all
    torch.testing.assert_close(residual[~dropped], branch[~dropped] / 0.5)  # survivors scaled by 1/(1 − p)


@pytest.mark.parametrize(
    "in_ch, expanded, out_ch, kernel, stride, se", [(24, 144, 24, 3, 1, False), (40, 240, 80, 5, 2, True)]
)
def test_inverted_residual_closed_form(in_ch, expanded, out_ch, kernel, stride, se):
    rd = 16
    se_layer = partial(SqueezeExcite, rd_channels=rd) if se else None
    block = InvertedResidual(in_ch, out_ch, stride, expanded_channels=expanded, kernel_size=kernel, se_layer=se_layer)
    # Docstring: params = C_in·E + k²·E + E·C_out + 2·(2·E + C_out) (+ SE 2·E·R + R + E);
    # MACs = P_in·C_in·E + P·(k²·E + E·C_out) (+ SE 2·E·R), counted here for the convolutions by fvcore.
    params = in_ch * expanded + kernel**2 * expanded + expanded * out_ch + 2 * (2 * expanded + out_ch)
    size = 8
    p_in, p_out = size * size, (size // stride) ** 2
    macs = p_in * in_ch * expanded + p_out * (kernel**2 * expanded + expanded * out_ch)
    if se:
        params += 2 * expanded * rd + rd + expanded
        macs += 2 * expanded * rd
    assert n_params(block) == params
    assert fvcore_conv_macs(block, torch.randn(1, in_ch, size, size)) == macs


@pytest.mark.parametrize("in_ch, out_ch, kernel, stride", [(32, 64, 3, 1), (64, 128, 3, 2), (24, 40, 5, 1)])
def test_depthwise_separable_cost_ratio_against_fvcore(in_ch, out_ch, kernel, stride):
    block = DepthwiseSeparableConv(in_ch, out_ch, stride, kernel_size=kernel)
    standard = nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False))
    x = torch.randn(1, in_ch, 16, 16)
    ratio = Fraction(fvcore_conv_macs(block, x), fvcore_conv_macs(standard, x))
    assert ratio == Fraction(1, out_ch) + Fraction(1, kernel**2)
    conv_weights = block.depthwise.conv.weight.numel() + block.pointwise.conv.weight.numel()
    assert Fraction(conv_weights, standard[0].weight.numel()) == ratio
    assert n_params(block) == kernel**2 * in_ch + in_ch * out_ch + 2 * (in_ch + out_ch)  # docstring


@pytest.mark.parametrize("se", [False, True])
def test_depthwise_separable_matches_timm_block(se):
    # timm's MobileNetV1 block ("dsa"): activation after the pointwise conv, no skip; its SE squeezes C_in/4.
    timm_se = partial(TimmSqueezeExcite, rd_ratio=0.25) if se else None
    reference = TimmDepthwiseSeparableConv(32, 48, 3, 2, noskip=True, pw_act=True, act_layer=nn.ReLU6, se_layer=timm_se)
    ours_se = partial(SqueezeExcite, rd_channels=8, act_layer="relu6") if se else None
    ours = DepthwiseSeparableConv(32, 48, 2, act_layer="relu6", se_layer=ours_se)
    assert_same_outputs(ours, reference, torch.randn(2, 32, 8, 8))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"stride": 3}, "stride must be 1 or 2, got 3"),
        ({"kernel_size": 4}, "kernel_size must be an odd positive int"),
        ({"drop_path_rate": 1.0}, r"drop_path_rate must be in \[0, 1\), got 1.0"),
        ({"expanded_channels": 0}, "expanded_channels must be a positive int, got 0"),
    ],
)
def test_inverted_residual_validates_arguments(kwargs, match):
    arguments = {"expanded_channels": 96, **kwargs}
    with pytest.raises(ValueError, match=match):
        InvertedResidual(16, 16, **arguments)
