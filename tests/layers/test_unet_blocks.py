"""U-Net blocks: parameter counts in closed form, shapes, and outputs against the same computation written with
PyTorch's functional ops (conv, transposed conv, batch norm, interpolate with align_corners=True, pad)."""

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from zoo.layers.unet import DoubleConv, Down, OutConv, Up, pad_to_size


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def double_conv_params(c_in, c_out, c_mid):
    # two bias-free 3×3 convs, each followed by a BN with γ and β
    return 9 * c_in * c_mid + 2 * c_mid + 9 * c_mid * c_out + 2 * c_out


def randomize_bn_(module):
    """Non-trivial BN statistics and affine parameters, so eval mode exercises all of them."""
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.running_mean.normal_(0, 0.1)
                bn.running_var.uniform_(0.5, 1.5)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.normal_(0, 0.1)
    return module


def functional_double_conv(block, x):
    for unit in (block.conv1, block.conv2):
        x = F.conv2d(x, unit.conv.weight, padding=1)
        bn = unit.bn
        x = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)
        x = F.relu(x)
    return x


@pytest.mark.parametrize("c_in, c_out, c_mid", [(3, 8, None), (16, 8, 4), (5, 7, 11)])
def test_double_conv_params_shape_and_output(c_in, c_out, c_mid):
    block = randomize_bn_(DoubleConv(c_in, c_out, c_mid)).eval()
    assert n_params(block) == double_conv_params(c_in, c_out, c_out if c_mid is None else c_mid)
    assert block.conv1.conv.bias is None and block.conv2.conv.bias is None
    x = torch.randn(2, c_in, 9, 6)
    with torch.no_grad():
        y = block(x)
    assert y.shape == (2, c_out, 9, 6)
    torch.testing.assert_close(y, functional_double_conv(block, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size, pooled", [((16, 16), (8, 8)), ((15, 9), (7, 4)), ((2, 3), (1, 1))])
def test_down_pools_by_two_flooring(size, pooled):
    block = randomize_bn_(Down(4, 6)).eval()
    assert n_params(block) == double_conv_params(4, 6, 6)
    x = torch.randn(1, 4, *size)
    with torch.no_grad():
        y = block(x)
    assert y.shape == (1, 6, *pooled)
    torch.testing.assert_close(y, functional_double_conv(block.conv, F.max_pool2d(x, 2, 2)), rtol=1e-5, atol=1e-5)


def test_pad_to_size_splits_the_difference_like_the_reference():
    x = torch.randn(1, 2, 4, 5)
    # 3 more rows (1 above, 2 below) and 2 more columns (1 left, 1 right), written out by hand.
    expected = torch.zeros(1, 2, 7, 7)
    expected[..., 1:5, 1:6] = x
    torch.testing.assert_close(pad_to_size(x, (7, 7)), expected, rtol=0, atol=0)
    # A map one pixel too large loses its first row and column: ⌊-1/2⌋ = -1 before, 0 after.
    torch.testing.assert_close(pad_to_size(x, (3, 4)), x[..., 1:, 1:], rtol=0, atol=0)
    assert pad_to_size(x, (4, 5)) is x


@pytest.mark.parametrize("bilinear", [False, True])
def test_up_params(bilinear):
    c_in, c_skip, c_out = 12, 6, 5
    block = Up(c_in, c_skip, c_out, bilinear)
    if bilinear:  # parameter-free upsampling; the middle width is half the concatenation
        expected = double_conv_params(c_in + c_skip, c_out, (c_in + c_skip) // 2)
    else:  # transposed 2×2 conv with bias, halving the channels
        expected = 4 * c_in * (c_in // 2) + c_in // 2 + double_conv_params(c_in // 2 + c_skip, c_out, c_out)
    assert n_params(block) == expected
    assert n_params(Up(c_in, c_skip, c_out, bilinear, mid_channels=3)) == expected - n_params(block.conv) + (
        double_conv_params(c_in // (1 if bilinear else 2) + c_skip, c_out, 3)
    )


@pytest.mark.parametrize("bilinear", [False, True])
@pytest.mark.parametrize(
    "deep_size, skip_size", [((4, 4), (8, 8)), ((3, 5), (7, 11)), ((2, 3), (5, 6)), ((5, 5), (9, 9))]
)
def test_up_matches_functional_composition(bilinear, deep_size, skip_size):
    block = randomize_bn_(Up(8, 3, 6, bilinear)).eval()
    x, skip = torch.randn(2, 8, *deep_size), torch.randn(2, 3, *skip_size)
    with torch.no_grad():
        y = block(x, skip)
        if bilinear:
            up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            up = F.conv_transpose2d(x, block.up.weight, block.up.bias, stride=2)
        dy, dx = skip_size[0] - up.shape[-2], skip_size[1] - up.shape[-1]
        up = F.pad(up, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        expected = functional_double_conv(block.conv, torch.cat([skip, up], dim=1))
    assert y.shape == (2, 6, *skip_size)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bilinear", [False, True])
def test_up_without_skip_doubles_the_size(bilinear):
    block = Up(8, 0, 4, bilinear).eval()
    with torch.no_grad():
        assert block(torch.randn(1, 8, 3, 5)).shape == (1, 4, 6, 10)
    with pytest.raises(ValueError, match="no skip"):
        block(torch.randn(1, 8, 3, 5), torch.randn(1, 2, 6, 10))
    with pytest.raises(ValueError, match="a skip of 2 channels"):
        Up(8, 2, 4, bilinear)(torch.randn(1, 8, 3, 5))


def test_out_conv_is_a_biased_1x1_conv():
    head = OutConv(7, 3)
    assert n_params(head) == 7 * 3 + 3
    x = torch.randn(2, 7, 5, 4)
    torch.testing.assert_close(head(x), F.conv2d(x, head.weight, head.bias), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: DoubleConv(0, 4), "in_channels"),
        (lambda: DoubleConv(4, 4, mid_channels=-1), "mid_channels"),
        (lambda: Down(4, 2.5), "out_channels"),
        (lambda: Up(8, -1, 4), "skip_channels"),
        (lambda: Up(1, 4, 4), "halves in_channels"),
        (lambda: OutConv(4, 0), "num_classes"),
    ],
)
def test_bad_channels_are_rejected(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_bilinear_must_be_a_bool():
    with pytest.raises(TypeError, match="bilinear"):
        Up(8, 4, 4, bilinear="yes")
