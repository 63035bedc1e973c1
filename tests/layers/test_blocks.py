"""Blocks from zoo.layers against torchvision/timm blocks and their closed-form parameter counts."""

import pytest
import torch
import torchvision
from reference_models import randomize_
from timm.layers import SEModule

import zoo
from zoo.layers import BasicBlock, Bottleneck, ConvNormAct, SqueezeExcite, get_act_layer, make_divisible


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "in_ch, planes, stride, groups, base_width, dilation",
    [(64, 64, 1, 1, 64, 1), (256, 128, 2, 1, 64, 1), (256, 128, 2, 32, 4, 1), (512, 128, 1, 1, 128, 2)],
)
def test_bottleneck_matches_torchvision_block(in_ch, planes, stride, groups, base_width, dilation):
    downsample = None
    if stride != 1 or in_ch != planes * 4:
        downsample = torch.nn.Sequential(
            torch.nn.Conv2d(in_ch, planes * 4, 1, stride=stride, bias=False), torch.nn.BatchNorm2d(planes * 4)
        )
    reference = torchvision.models.resnet.Bottleneck(
        in_ch, planes, stride, downsample, groups=groups, base_width=base_width, dilation=dilation
    )
    randomize_(reference).eval()
    ours = Bottleneck(in_ch, planes, stride, groups=groups, base_width=base_width, dilation=dilation).eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    x = torch.randn(2, in_ch, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)

    # Closed form from the docstring: W = ⌊planes·base_width/64⌋·groups, C_out = 4·planes.
    width, out = int(planes * base_width / 64) * groups, 4 * planes
    expected = in_ch * width + 9 * width * width // groups + width * out + 2 * (2 * width + out)
    if downsample is not None:
        expected += in_ch * out + 2 * out
    assert n_params(ours) == expected


@pytest.mark.parametrize("in_ch, planes, stride", [(64, 64, 1), (64, 128, 2)])
def test_basic_block_matches_torchvision_block(in_ch, planes, stride):
    downsample = None
    if stride != 1 or in_ch != planes:
        downsample = torch.nn.Sequential(
            torch.nn.Conv2d(in_ch, planes, 1, stride=stride, bias=False), torch.nn.BatchNorm2d(planes)
        )
    reference = randomize_(torchvision.models.resnet.BasicBlock(in_ch, planes, stride, downsample)).eval()
    ours = BasicBlock(in_ch, planes, stride).eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    x = torch.randn(2, in_ch, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
    expected = 9 * in_ch * planes + 9 * planes * planes + 4 * planes
    if downsample is not None:
        expected += in_ch * planes + 2 * planes
    assert n_params(ours) == expected


def test_basic_block_refuses_groups():
    with pytest.raises(ValueError, match="Bottleneck"):
        BasicBlock(64, 64, groups=32, base_width=4)


@pytest.mark.parametrize("channels", [64, 256, 1024, 2048])
def test_squeeze_excite_matches_timm(channels):
    reference = randomize_(SEModule(channels, rd_ratio=1 / 16, rd_divisor=8)).eval()
    ours = SqueezeExcite(channels).eval()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, channels, 4, 4)
    torch.testing.assert_close(ours(x), reference(x))
    rd = ours.fc1.out_channels
    assert n_params(ours) == 2 * channels * rd + rd + channels


def test_conv_norm_act_closed_form_and_output_size():
    block = ConvNormAct(16, 32, kernel_size=3, stride=2, groups=4, act_layer="hard_swish")
    assert n_params(block) == 32 * 9 * 16 // 4 + 2 * 32
    assert isinstance(block.act, torch.nn.Hardswish)
    # H_out = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1 with p = 1: 15 → 8
    assert block(torch.randn(1, 16, 15, 15)).shape == (1, 32, 8, 8)


def test_conv_norm_act_validates_groups():
    with pytest.raises(ValueError, match="divisible by groups"):
        ConvNormAct(10, 32, groups=4)


def test_activation_factory():
    assert get_act_layer("relu") is torch.nn.ReLU and get_act_layer(torch.nn.GELU) is torch.nn.GELU
    with pytest.raises(ValueError, match="unknown activation 'swoosh'"):
        get_act_layer("swoosh")


def test_make_divisible_matches_torchvision():
    from torchvision.models._utils import _make_divisible

    for divisor in (4, 8, 16):
        for tenths in range(1, 5000, 7):
            value = tenths / 10
            assert make_divisible(value, divisor) == _make_divisible(value, divisor), (value, divisor)
