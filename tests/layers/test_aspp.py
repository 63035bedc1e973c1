"""ASPP against torchvision's DeepLabv3 ASPP (same outputs after loading its randomised weights, in eval and
in training), the closed-form parameter and MAC counts of its docstring, and the paper's atrous rates."""

import pytest
import torch
from reference_models import randomize_
from torchvision.models.segmentation.deeplabv3 import ASPP as TorchvisionASPP

import zoo
from zoo.analysis.flops import count_flops
from zoo.layers.aspp import ASPP, ASPPPooling, aspp_rates


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "in_ch, out_ch, rates, size",
    [
        (32, 16, (12, 24, 36), (9, 11)),  # rates wider than the map: the outer taps read only padding
        (24, 8, (6, 12, 18), (33, 20)),
        (16, 8, (1, 2), (7, 7)),  # two rates: the pooling branch is convs.3, not convs.4
        (16, 8, (2, 3, 5, 7), (10, 6)),
    ],
)
def test_matches_torchvision_aspp(in_ch, out_ch, rates, size):
    reference = randomize_(TorchvisionASPP(in_ch, rates, out_ch)).eval()
    ours = ASPP(in_ch, rates, out_ch).eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    x = torch.randn(2, in_ch, *size)
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
    assert expected.shape == (2, out_ch, *size)


def test_matches_torchvision_in_training_mode():
    # Batch statistics in every BN, and the same dropout mask: both draw it last from the same seed.
    reference = randomize_(TorchvisionASPP(16, (2, 4, 6), 8)).train()
    ours = ASPP(16, (2, 4, 6), 8).train()
    zoo.load_reference_weights(ours, reference.state_dict())
    x = torch.randn(3, 16, 8, 9)
    torch.manual_seed(1)
    expected = reference(x)
    torch.manual_seed(1)
    torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
    assert (expected == 0).any()  # dropout (and ReLU) did zero something
    torch.testing.assert_close(ours.project.bn.running_mean, reference.project[1].running_mean)


@pytest.mark.parametrize("in_ch, out_ch, rates", [(64, 32, (12, 24, 36)), (40, 16, (6, 12, 18)), (16, 8, (1,))])
def test_parameter_count_closed_form(in_ch, out_ch, rates):
    c, n = out_ch, len(rates)
    one_by_one = in_ch * c + 2 * c
    atrous = n * (9 * in_ch * c + 2 * c)
    pooling = in_ch * c + 2 * c
    project = (n + 2) * c * c + 2 * c
    expected = one_by_one + atrous + pooling + project
    assert expected == c * in_ch * (2 + 9 * n) + (n + 2) * c * c + 2 * c * (n + 3)  # the docstring's form
    assert n_params(ASPP(in_ch, rates, out_ch)) == expected
    assert n_params(TorchvisionASPP(in_ch, rates, out_ch)) == expected


def test_parameter_count_deeplabv3_figure():
    # DeepLabv3's ASPP on ResNet's 2048 channels: 256·2048·29 + 5·256² + 2·256·6.
    assert n_params(ASPP(2048, (12, 24, 36))) == 15_535_104


def test_macs_closed_form():
    in_ch, c, rates, (h, w) = 32, 16, (2, 3, 5), (9, 11)
    p, n = h * w, len(rates)
    conv_macs = p * c * (in_ch * (1 + 9 * n) + (n + 2) * c) + in_ch * c
    # fvcore's conventions for the rest: 2 per batch-norm element (eval), 1 per averaged input element,
    # 4 per bilinearly upsampled output element.
    norm_elements = (n + 2) * c * p + c
    flops = count_flops(ASPP(in_ch, rates, c), (in_ch, h, w))
    assert flops.macs == conv_macs + 2 * norm_elements + in_ch * p + 4 * c * p


def test_branches_use_the_rates_and_keep_the_size():
    aspp = ASPP(8, (3, 7, 11), 4)
    branches = list(aspp.convs)
    assert [b.conv.kernel_size for b in branches] == [(1, 1), (3, 3), (3, 3), (3, 3), (1, 1)]
    assert [b.conv.dilation[0] for b in branches[1:4]] == [3, 7, 11]
    assert [b.conv.padding[0] for b in branches[1:4]] == [3, 7, 11]
    assert isinstance(branches[-1], ASPPPooling)
    assert aspp.project.conv.in_channels == 5 * 4
    assert aspp.dropout.p == 0.5


def test_pooling_branch_is_relu_bn_conv_of_the_mean():
    branch = randomize_(ASPPPooling(6, 4)).eval()
    x = torch.randn(2, 6, 5, 7)
    mean = x.mean(dim=(2, 3))  # (N, C_in)
    bn = branch.bn
    conv = mean @ branch.conv.weight.flatten(1).T
    expected = torch.relu((conv - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias)
    with torch.no_grad():
        out = branch(x)
    assert out.shape == (2, 4, 5, 7)
    torch.testing.assert_close(out, expected[:, :, None, None].expand(2, 4, 5, 7), rtol=1e-5, atol=1e-6)


def test_aspp_rates_follow_the_output_stride():
    assert aspp_rates(16) == (6, 12, 18)
    assert aspp_rates(8) == (12, 24, 36)


@pytest.mark.parametrize("output_stride", [4, 32, 0, True, 8.0, "8"])
def test_aspp_rates_rejects_other_strides(output_stride):
    with pytest.raises(ValueError, match="output_stride must be 8 or 16"):
        aspp_rates(output_stride)


@pytest.mark.parametrize("rates", [(), (0, 6), (6.0,), "6", None, (True,)])
def test_rejects_bad_rates(rates):
    with pytest.raises(ValueError, match="atrous_rates"):
        ASPP(8, rates)


def test_rejects_bad_channels_and_dropout():
    with pytest.raises(ValueError, match="in_channels"):
        ASPP(0, (6,))
    with pytest.raises(ValueError, match="out_channels"):
        ASPP(8, (6,), out_channels=-1)
    with pytest.raises(ValueError, match="dropout"):
        ASPP(8, (6,), dropout=1.0)
