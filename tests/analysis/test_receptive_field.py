"""Receptive fields against closed-form values worked out by hand from the layer lists (Araujo et al., 2019).

Convention: input pixel i has its centre at i; ``start`` is the centre of output unit 0's field.
"""

import pytest
import torch
import torchvision
from torch import nn

import zoo
from zoo.analysis.receptive_field import empirical_receptive_field, receptive_field


def _conv(kernel_size, stride=1, padding=0, dilation=1):
    return nn.Conv2d(2, 2, kernel_size, stride=stride, padding=padding, dilation=dilation)


# (net, r, j, start) per axis, each computed by hand in the comment.
SMALL_NETS = {
    # 3×3/2 → r 3, j 2, start 1 (pixels 0..2); 3×3/2 → r 3 + 2·2 = 7, j 4, start 1 + 1·2 = 3 (pixels 0..6)
    "two_3x3_stride2_valid": (nn.Sequential(_conv(3, 2), nn.ReLU(), _conv(3, 2)), (7, 7), (4, 4), (3, 3)),
    # padding 1 moves each start back by one jump: 0 + (1 − 1)·1 = 0, then 0 + (1 − 1)·2 = 0
    "two_3x3_stride2_same": (nn.Sequential(_conv(3, 2, 1), _conv(3, 2, 1)), (7, 7), (4, 4), (0, 0)),
    # 1 + 2 + 2 + 2 = 7, as one 7×7
    "three_3x3": (nn.Sequential(_conv(3, 1, 1), _conv(3, 1, 1), _conv(3, 1, 1)), (7, 7), (1, 1), (0, 0)),
    # k_eff = 2·(3 − 1) + 1 = 5; start 0 + (2 − 0)·1 = 2
    "dilated_3x3": (nn.Sequential(_conv(3, dilation=2)), (5, 5), (1, 1), (2, 2)),
    # ResNet stem: 7×7/2 p3 → r 7, j 2, start 0 + (3 − 3)·1 = 0; 3×3/2 p1 max-pool → r 7 + 2·2 = 11, j 4,
    # start 0 + (1 − 1)·2 = 0
    "resnet_stem": (
        nn.Sequential(_conv(7, 2, 3), nn.BatchNorm2d(2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)),
        (11, 11),
        (4, 4),
        (0, 0),
    ),
    # 2×2/2 avg-pool → r 2, j 2, start 0.5; 3×5 conv → r (2 + 2·2, 2 + 4·2) = (6, 10), start (2.5, 4.5)
    "avgpool_then_3x5": (nn.Sequential(nn.AvgPool2d(2), _conv((3, 5))), (6, 10), (2, 2), (2.5, 4.5)),
}


@pytest.mark.parametrize("name", list(SMALL_NETS))
def test_small_nets_match_hand_computation_and_gradients(name):
    net, size, jump, start = SMALL_NETS[name]
    rf = receptive_field(net, (2, 64, 64))
    assert (rf.output.size, rf.output.jump, rf.output.start) == (size, jump, start)
    assert empirical_receptive_field(net, (2, 64, 64)) == size


class InPlaceResidual(nn.Module):
    """Adds the main branch into its 1×1/2 projection in place, so the sum is the projection's tensor."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(_conv(3, 2, 1), nn.ReLU(), _conv(3, 1, 1))
        self.downsample = _conv(1, 2)

    def forward(self, x):
        shortcut = self.downsample(x)
        shortcut += self.body(x)
        return shortcut.relu_()


def test_in_place_sum_follows_the_larger_branch():
    net = InPlaceResidual()
    rf = receptive_field(net, (2, 64, 64))
    # body: 3×3/2 → r 3, j 2; 3×3/1 → r 3 + 2·2 = 7. The projection alone would give r 1.
    assert [layer.name for layer in rf.layers] == ["body.0", "body.2"]
    assert rf.output.size == (7, 7) == empirical_receptive_field(net, (2, 64, 64))


def test_unit_stride_1x1_conv_is_a_row_that_keeps_the_field():
    rf = receptive_field(nn.Sequential(_conv(3), _conv(1)), (2, 16, 16))
    assert [layer.name for layer in rf.layers] == ["0", "1"]
    assert rf.layers[0].geometry == rf.layers[1].geometry


def _hand_resnet_stages(blocks, spatial_convs_per_block):
    """(r, j) after each stage: stem 7×7/2 and 3×3/2 pool, then 3×3 convs, stride 2 on the first of layer2..4."""
    r, j = 1 + 6, 2  # 7×7/2 conv
    r, j = r + 2 * j, j * 2  # 3×3/2 max-pool
    stages = []
    for stage, count in enumerate(blocks):
        for index in range(count * spatial_convs_per_block):
            r, j = r + 2 * j, j * (2 if stage > 0 and index == 0 else 1)
        stages.append((r, j))
    return stages


@pytest.fixture(scope="module")
def resnet18_field():
    return receptive_field(zoo.create_model("resnet18"), (3, 64, 64))


def test_resnet18_stages_match_hand_computation(resnet18_field):
    expected = _hand_resnet_stages([2, 2, 2, 2], spatial_convs_per_block=2)
    assert expected[0] == (43, 4)
    rf = resnet18_field
    stages = rf.stages()
    assert [s.module for s in stages] == ["layer1", "layer2", "layer3", "layer4"]
    assert [s.reduction for s in stages] == [4, 8, 16, 32]
    assert [(s.geometry.size[0], s.geometry.jump[0]) for s in stages] == expected
    assert [s.geometry.jump for s in stages] == [(r, r) for r in (4, 8, 16, 32)]
    assert len(rf.layers) == 2 + 16  # stem conv, max-pool, 8 blocks × two 3×3 convs
    assert rf.global_pool == "head.global_pool.pool"


def test_resnet18_layer1_field_is_what_gradients_reach():
    features = zoo.create_model("resnet18", features_only=True, out_indices=(0,))

    class FirstMap(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x)[0]

    assert receptive_field(features, (3, 96, 96)).output.size == (43, 43)
    assert empirical_receptive_field(FirstMap(features), (3, 96, 96)) == (43, 43)


def test_bottleneck_resnet_keeps_projection_shortcuts_off_the_main_path():
    rf = receptive_field(zoo.create_model("resnet50"), (3, 32, 32))
    sizes = [s.geometry.size[0] for s in rf.stages()]
    assert sizes == sorted(sizes)
    assert [(s.geometry.size[0], s.geometry.jump[0]) for s in rf.stages()] == _hand_resnet_stages(
        [3, 4, 6, 3], spatial_convs_per_block=1
    )
    assert not [layer.name for layer in rf.layers if "downsample" in layer.name]
    assert "layer2.0.downsample" in rf.by_module  # recorded, but not on the path


@pytest.mark.parametrize("input_size", [(3, 64, 64), (3, 32, 32)])  # at 32 layer4 is 1×1, as SE's pooled vector
def test_squeeze_excite_does_not_enter_the_main_path(input_size):
    rf = receptive_field(zoo.create_model("seresnet18"), input_size)
    assert [s.geometry.size[0] for s in rf.stages()] == [r for r, _ in _hand_resnet_stages([2, 2, 2, 2], 2)]
    assert not [layer.name for layer in rf.layers if ".se." in layer.name]
    assert "layer1.0.se.fc1" not in rf.by_module  # it reads a pooled vector, which has no field


def test_torchvision_resnet18_with_in_place_residual_add():
    # torchvision adds the shortcut in place (out += identity) and reuses one ReLU module twice per block
    rf = receptive_field(torchvision.models.resnet18(weights=None), (3, 64, 64))
    expected = _hand_resnet_stages([2, 2, 2, 2], spatial_convs_per_block=2)
    assert [rf.by_module[f"layer{i}"].size[0] for i in range(1, 5)] == [r for r, _ in expected]


def test_table_has_a_row_per_layer_and_per_stage(resnet18_field):
    rf = resnet18_field
    lines = rf.table().splitlines()
    assert lines[0].split() == ["layer", "type", "kernel", "stride", "padding", "dilation", "output", "r", "j", "start"]
    assert lines[1].split() == ["conv1.conv", "Conv2d", "7", "2", "3", "1", "32x32", "7", "2", "0"]
    assert len(lines) == 1 + len(rf.layers)
    assert rf.table(stages=True).splitlines()[-1].split() == ["layer4", "32", "435", "32", "0"]


@pytest.mark.parametrize("input_size", [(224, 224), (3, 0, 224), (3, 224.0, 224), "3x224x224"])
def test_input_size_is_validated(input_size):
    with pytest.raises(ValueError, match="input_size must be"):
        receptive_field(nn.Sequential(_conv(3)), input_size)
    with pytest.raises(ValueError, match="input_size must be"):
        empirical_receptive_field(nn.Sequential(_conv(3)), input_size)


def test_model_without_spatial_layers_is_refused():
    with pytest.raises(ValueError, match="no Conv2d"):
        receptive_field(nn.Sequential(nn.ReLU()), (2, 8, 8))


def test_transposed_convolution_is_refused():
    with pytest.raises(ValueError, match="ConvTranspose2d"):
        receptive_field(nn.Sequential(_conv(3), nn.ConvTranspose2d(2, 2, 2, stride=2)), (2, 8, 8))


def test_empirical_needs_a_feature_map_output():
    with pytest.raises(TypeError, match=r"\(N, C, H, W\)"):
        empirical_receptive_field(nn.Sequential(_conv(3), nn.Flatten()), (2, 8, 8))
    with pytest.raises(ValueError, match="outside"):
        empirical_receptive_field(nn.Sequential(_conv(3)), (2, 8, 8), output_index=(6, 0))


def test_empirical_ignores_the_trained_weights():
    # a BN shift that switches every ReLU off would hide the field from gradients of the real model
    norm = nn.BatchNorm2d(2).eval()
    nn.init.constant_(norm.bias, -100.0)
    net = nn.Sequential(_conv(3, 1, 1), norm, nn.ReLU(), _conv(3, 1, 1))
    assert empirical_receptive_field(net, (2, 32, 32)) == (5, 5)  # 1 + 2 + 2


def test_empirical_leaves_the_model_untouched():
    net = nn.Sequential(_conv(3), nn.BatchNorm2d(2), nn.MaxPool2d(2))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    empirical_receptive_field(net, (2, 16, 16))
    assert isinstance(net[2], nn.MaxPool2d)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
