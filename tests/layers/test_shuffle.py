"""channel_shuffle against a permutation written out by hand; ShuffleV2Block against torchvision's
InvertedResidual and against the closed-form parameter and MAC counts of its docstring."""

import pytest
import torch
from reference_models import randomize_
from torchvision.models.shufflenetv2 import InvertedResidual

import zoo
from zoo.analysis.flops import count_flops
from zoo.layers.shuffle import ShuffleV2Block, channel_shuffle


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "groups, order",
    [
        (1, [0, 1, 2, 3, 4, 5]),
        (2, [0, 3, 1, 4, 2, 5]),  # groups (0 1 2)(3 4 5): take one from each group in turn
        (3, [0, 2, 4, 1, 3, 5]),  # groups (0 1)(2 3)(4 5)
        (6, [0, 1, 2, 3, 4, 5]),
    ],
)
def test_channel_shuffle_is_the_hand_written_permutation(groups, order):
    x = torch.randn(2, 6, 3, 4)
    torch.testing.assert_close(channel_shuffle(x, groups), x[:, order], rtol=0, atol=0)


def test_channel_shuffle_closed_form_index():
    groups, per_group = 4, 3
    x = torch.arange(groups * per_group, dtype=torch.float32).view(1, -1, 1, 1)
    out = channel_shuffle(x, groups).flatten().tolist()
    # Output channel j·groups + i is input channel i·per_group + j.
    assert out == [i * per_group + j for j in range(per_group) for i in range(groups)]


@pytest.mark.parametrize("groups, channels", [(4, 6), (0, 6), (2.0, 6)])
def test_channel_shuffle_validates_groups(groups, channels):
    with pytest.raises(ValueError, match="groups"):
        channel_shuffle(torch.randn(1, channels, 2, 2), groups)


@pytest.mark.parametrize("in_ch, out_ch, stride", [(24, 48, 2), (24, 116, 2), (116, 116, 1), (48, 48, 1)])
def test_block_matches_torchvision_inverted_residual(in_ch, out_ch, stride):
    reference = randomize_(InvertedResidual(in_ch, out_ch, stride)).eval()
    ours = ShuffleV2Block(in_ch, out_ch, stride).eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    x = torch.randn(2, in_ch, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("in_ch, out_ch, stride", [(24, 116, 2), (116, 116, 1)])
def test_block_closed_form_params_and_macs(in_ch, out_ch, stride):
    block = ShuffleV2Block(in_ch, out_ch, stride)
    side = 9
    out_side = (side - 1) // stride + 1  # 3×3 convolution, padding 1
    b, hw, p = out_ch // 2, side * side, out_side * out_side
    if stride == 1:
        params, conv_macs = 2 * b * b + 15 * b, p * (2 * b * b + 9 * b)
        norm_elements = 3 * p * b
    else:
        params = 2 * in_ch * b + 11 * in_ch + b * b + 17 * b
        conv_macs = hw * in_ch * b + p * (in_ch * b + 9 * in_ch + b * b + 9 * b)
        norm_elements = p * in_ch + p * b + hw * b + 2 * p * b
    assert n_params(block) == params
    flops = count_flops(block, (in_ch, side, side))  # fvcore, in eval: 2 MACs per batch-norm element
    assert flops.macs == flops.macs_closed_form == conv_macs + 2 * norm_elements


def test_block_validates_channels_and_stride():
    with pytest.raises(ValueError, match="in_channels must equal out_channels"):
        ShuffleV2Block(24, 48, 1)
    with pytest.raises(ValueError, match="must be even"):
        ShuffleV2Block(24, 47, 2)
    with pytest.raises(ValueError, match="stride"):
        ShuffleV2Block(24, 48, 0)
