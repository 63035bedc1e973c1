"""Darknet-53 against the YOLOv3 paper's Table 1 (layers, closed-form parameters) and timm's darknet53
(the same layers: parameters, outputs after the weight-name mapping, stage features)."""

from functools import partial

import pytest
import timm
import torch
from reference_models import randomize_
from torch import nn

import zoo
from zoo.models.darknet import Darknet, DarknetBlock
from zoo.models.features import FeatureListNet

# YOLOv3 paper, Table 1, top to bottom: (repeats, [(filters, size, stride), ...]); a residual row adds the
# input of its pair of convs to their output.
TABLE_1 = [
    (1, [(32, 3, 1)]),
    (1, [(64, 3, 2)]),
    (1, [(32, 1, 1), (64, 3, 1)]),
    (1, [(128, 3, 2)]),
    (2, [(64, 1, 1), (128, 3, 1)]),
    (1, [(256, 3, 2)]),
    (8, [(128, 1, 1), (256, 3, 1)]),
    (1, [(512, 3, 2)]),
    (8, [(256, 1, 1), (512, 3, 1)]),
    (1, [(1024, 3, 2)]),
    (4, [(512, 1, 1), (1024, 3, 1)]),
]


def table_convs():
    return [conv for repeats, convs in TABLE_1 for _ in range(repeats) for conv in convs]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def timm_darknet53(slope=0.1, **kwargs):
    """timm's darknet53 (a CspNet configuration) with Darknet's LeakyReLU slope (timm's default is 0.01)."""
    return timm.create_model("darknet53", act_layer=partial(nn.LeakyReLU, negative_slope=slope), **kwargs)


def on_meta(build):
    """Build without allocating or initialising weights: enough for structure and parameter counts."""
    with torch.device("meta"):
        return build()


@pytest.fixture(scope="module")
def pair():
    """timm's darknet53 with random weights, and zoo's darknet53 holding the same weights."""
    reference = randomize_(timm_darknet53()).eval()
    # Every value comes from the reference, so ours skips its own initialisation (built on meta, then allocated).
    ours = on_meta(lambda: zoo.create_model("darknet53")).to_empty(device="cpu")
    return reference, zoo.load_reference_weights(ours, reference.state_dict()).eval()


def test_layers_follow_paper_table_1():
    model = on_meta(lambda: zoo.create_model("darknet53"))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    expected = table_convs()
    # "Darknet-53": 52 convolutions and the connected layer.
    assert len(convs) == len(expected) == 52
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == expected
    assert all(c.bias is None for c in convs), "every conv is followed by batch norm, so has no bias"
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.1}
    assert model.get_classifier().in_features == 1024 and model.get_classifier().out_features == 1000


def test_parameter_count_closed_form_from_table_1():
    # Each k×k conv from C_in to C_out: k²·C_in·C_out weights and BN γ, β; then the 1024 → 1000 classifier.
    expected, in_channels = 0, 3
    for out_channels, size, _ in table_convs():
        expected += size * size * in_channels * out_channels + 2 * out_channels
        in_channels = out_channels
    expected += 1024 * 1000 + 1000
    assert expected == 41_609_928
    assert n_params(on_meta(lambda: zoo.create_model("darknet53"))) == expected
    assert n_params(on_meta(lambda: timm.create_model("darknet53"))) == expected
    ten_classes = on_meta(lambda: zoo.create_model("darknet53", num_classes=10))
    assert n_params(ten_classes) == expected - 1024 * 990 - 990


def test_outputs_match_timm_after_weight_mapping(pair):
    reference, ours = pair
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


def test_activation_slope_is_a_builder_argument():
    # timm's darknet53 keeps timm's LeakyReLU default (0.01); Darknet's "leaky" is 0.1, zoo's default.
    timm_slopes = {m.negative_slope for m in on_meta(lambda: timm.create_model("darknet53")).modules()
                   if isinstance(m, nn.LeakyReLU)}  # fmt: skip
    ours = on_meta(lambda: zoo.create_model("darknet53", act_layer=partial(nn.LeakyReLU, negative_slope=0.01)))
    assert {m.negative_slope for m in ours.modules() if isinstance(m, nn.LeakyReLU)} == timm_slopes == {0.01}


def test_features_only_match_timm_stages(pair):
    reference, ours = pair
    info = on_meta(lambda: zoo.create_model("darknet53", features_only=True)).feature_info
    assert info.reduction() == [2, 4, 8, 16, 32]
    assert info.channels() == [64, 128, 256, 512, 1024]
    features = FeatureListNet(ours)
    assert not any(key.startswith("fc.") for key in features.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = features(x)
        y = reference.stem(x)
        for stage, ours_map in zip(reference.stages, maps, strict=True):
            y = stage(y)
            torch.testing.assert_close(ours_map, y, rtol=1e-5, atol=1e-5 * y.abs().max().item())
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4, 2]


def conv_linear_macs(model, input_size):
    """Multiply-adds of the convolutions and linear layers, from the output shapes of a meta-device forward."""
    macs = []

    def record(module, args, output):
        per_output = module.in_features if isinstance(module, nn.Linear) else (
            module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        )  # fmt: skip
        macs.append(output.numel() * per_output)

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.device("meta"):
        model(torch.empty(1, 3, *input_size))
    for handle in handles:
        handle.remove()
    return sum(macs)


def test_operations_near_paper_table_2():
    # Table 2: 18.7 billion operations at 256×256. Counting multiplies and adds (2 per MAC) of the convs and the
    # classifier gives 18.57 billion: within 1 % (the paper does not say what else its count includes).
    operations = 2 * conv_linear_macs(on_meta(lambda: zoo.create_model("darknet53")).eval(), (256, 256))
    assert operations == pytest.approx(18.7e9, rel=0.01)


def test_block_is_residual_with_closed_form_parameters():
    block = DarknetBlock(8)
    assert n_params(block) == 5 * 8 * 8 + 3 * 8
    # With the second BN's γ = β = 0 the conv path is LeakyReLU(0) = 0: the block is the identity.
    nn.init.zeros_(block.conv2.bn.weight)
    nn.init.zeros_(block.conv2.bn.bias)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(block.eval()(x), x)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="channels must be even"):
        DarknetBlock(7)
    with pytest.raises(ValueError, match="blocks_per_stage"):
        Darknet([1, -2])
    with pytest.raises(ValueError, match="num_classes"):
        zoo.create_model("darknet53", num_classes=-1)
