"""The segmenters equal to segmentation_models_pytorch (smp) with a ResNet-34 encoder, checked against smp itself:
parameter counts (and the closed forms of the module docstrings against smp's modules), outputs after loading smp's
randomised weights at other class counts, input channels and widths, in eval and training mode, the input sizes
smp accepts or refuses (with the padded size smp suggests), the unused encoder stages of smp's PSPNet, and bad
input."""

import re

import pytest
import torch
from reference_models import randomize_

import zoo
from zoo.layers.pyramid_pooling import PyramidPooling
from zoo.models.segmentation.encoder_decoder import ResNetEncoder
from zoo.reference import build_reference, reference_label
from zoo.registry import model_spec

smp = pytest.importorskip("segmentation_models_pytorch")

SMP_CLASS = {
    "unet_resnet34": "Unet",
    "unetplusplus_resnet34": "UnetPlusPlus",
    "fpn_resnet34": "FPN",
    "pspnet_resnet34": "PSPNet",
}
NAMES = sorted(SMP_CLASS)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def smp_model(name, **kwargs):
    """smp's model, built here from its own class (not through zoo.reference), random weights (under
    ``torch.device("meta")``: shapes only, for counting)."""
    kwargs = {"encoder_name": "resnet34", "encoder_weights": None, "classes": 21, **kwargs}
    return getattr(smp, SMP_CLASS[name])(**kwargs)


def loaded_pair(name, ours_kwargs, smp_kwargs):
    reference = randomize_(smp_model(name, **smp_kwargs))
    ours = zoo.create_model(name, **ours_kwargs)
    zoo.load_reference_weights(ours, reference.state_dict())
    return ours, reference


# (zoo builder arguments, smp arguments, an input size smp accepts)
VARIANTS = {
    "unet_resnet34": [
        ({}, {}, (33, 47)),  # any size: each stage resizes to the map it joins
        ({"num_classes": 3, "in_chans": 1}, {"classes": 3, "in_channels": 1}, (31, 1)),
        ({"decoder_channels": (128, 64, 32, 16, 8)}, {"decoder_channels": (128, 64, 32, 16, 8)}, (64, 64)),
    ],
    "unetplusplus_resnet34": [
        ({}, {}, (64, 96)),
        ({"num_classes": 3, "in_chans": 1}, {"classes": 3, "in_channels": 1}, (32, 64)),
        ({"decoder_channels": (128, 64, 32, 16, 8)}, {"decoder_channels": (128, 64, 32, 16, 8)}, (64, 64)),
    ],
    "fpn_resnet34": [
        ({}, {}, (64, 96)),
        ({"num_classes": 3, "in_chans": 1}, {"classes": 3, "in_channels": 1}, (32, 64)),
        (
            {"pyramid_channels": 128, "segmentation_channels": 64},
            {"decoder_pyramid_channels": 128, "decoder_segmentation_channels": 64},
            (64, 64),
        ),
    ],
    "pspnet_resnet34": [
        ({}, {}, (40, 56)),  # divisible by 8 only
        ({"num_classes": 3, "in_chans": 1}, {"classes": 3, "in_channels": 1}, (64, 96)),
        ({"psp_out_channels": 256}, {"psp_out_channels": 256}, (8, 16)),
    ],
}
CASES = [
    pytest.param(name, *variant, id=f"{name}-{index}") for name in NAMES for index, variant in enumerate(VARIANTS[name])
]


@pytest.mark.parametrize(("name", "ours_kwargs", "smp_kwargs", "size"), CASES)
def test_equals_smp(name, ours_kwargs, smp_kwargs, size):
    ours, reference = loaded_pair(name, ours_kwargs, smp_kwargs)
    assert n_params(ours) == n_params(reference)
    in_chans = ours_kwargs.get("in_chans", 3)
    x = torch.randn(2, in_chans, *size)
    with torch.no_grad():
        expected = reference.eval()(x)
        out = ours.eval()(x)
    assert set(out) == {"out"}
    assert out["out"].shape == (2, ours_kwargs.get("num_classes", 21), *size)
    torch.testing.assert_close(out["out"], expected, rtol=1e-5, atol=1e-5 * max(1.0, expected.abs().max().item()))


@pytest.mark.parametrize("name", ["unet_resnet34", "unetplusplus_resnet34"])  # the two without dropout
def test_training_mode_equals_smp(name):
    ours, reference = loaded_pair(name, {}, {})
    x = torch.randn(2, 3, 64, 64)
    expected = reference.train()(x)
    out = ours.train()(x)["out"]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5 * max(1.0, expected.abs().max().item()))
    # The batch-norm statistics moved the same way.
    ours_stats = [b for n, b in ours.named_buffers() if n.endswith("running_mean")]
    smp_stats = [b for n, b in reference.named_buffers() if n.endswith("running_mean")]
    assert len(ours_stats) == len(smp_stats)
    torch.testing.assert_close(sum(s.sum() for s in ours_stats), sum(s.sum() for s in smp_stats))


def test_unet_resnet34_is_the_smp_unet_people_use():
    # smp.Unet("resnet34", classes=21): the figure the issue quotes.
    with torch.device("meta"):
        assert n_params(zoo.create_model("unet_resnet34")) == n_params(smp_model("unet_resnet34")) == 24_439_269


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_smp_as_the_reference(name):
    spec = model_spec(name)
    assert spec.task == "segmentation"
    assert spec.reference == ("smp", SMP_CLASS[name])
    assert reference_label(name) == f"smp `{SMP_CLASS[name]}` (resnet34)"
    with torch.device("meta"):
        assert type(build_reference(name)) is getattr(smp, SMP_CLASS[name])


# --- sizes ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "size"), [("unetplusplus_resnet34", (65, 96)), ("fpn_resnet34", (64, 100)),
                                            ("pspnet_resnet34", (36, 44))])  # fmt: skip
def test_sizes_smp_refuses_are_a_value_error_with_its_padding(name, size):
    reference = smp_model(name).eval()
    with pytest.raises(RuntimeError, match="divisible") as refused:
        reference(torch.randn(1, 3, *size))
    padded = re.search(r"pad your images to shape \((\d+), (\d+)\)", str(refused.value)).groups()
    with torch.device("meta"):
        ours = zoo.create_model(name)
    with pytest.raises(ValueError, match=rf"{size[0]}×{size[1]}: pad the image to {padded[0]}×{padded[1]}"):
        ours(torch.randn(1, 3, *size, device="meta"))


def test_unet_takes_any_size_as_smp():
    assert smp.Unet.requires_divisible_input_shape is False
    ours, reference = loaded_pair("unet_resnet34", {}, {})
    for size in [(1, 1), (17, 5), (45, 33)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            torch.testing.assert_close(ours.eval()(x)["out"], reference.eval()(x), rtol=1e-5, atol=1e-4)


def test_pspnet_leaves_layer3_and_layer4_unused_as_smp():
    ours, reference = loaded_pair("pspnet_resnet34", {}, {})
    x = torch.randn(2, 3, 32, 32)
    ours.train()(x)["out"].sum().backward()
    reference.train()(x).sum().backward()
    unused_ours = sum(p.numel() for p in ours.parameters() if p.grad is None)
    unused_smp = sum(p.numel() for p in reference.parameters() if p.grad is None)
    assert unused_ours == unused_smp == n_params(reference.encoder.layer3) + n_params(reference.encoder.layer4)


# --- closed forms of the docstrings against smp's modules -----------------------------------------------------
def conv(k, c_in, c_out, bias=False):
    return k * k * c_in * c_out + (c_out if bias else 0)


def double_conv(c_in, c_out):
    return conv(3, c_in, c_out) + conv(3, c_out, c_out) + 4 * c_out


RESNET34_MAPS = [64, 64, 128, 256, 512]  # the stem, layer1 … layer4
D = (256, 128, 64, 32, 16)


def test_unet_decoder_closed_form():
    c_in = [512, *D[:-1]]
    c_skip = [256, 128, 64, 64, 0]
    closed = sum(double_conv(i + s, o) for i, s, o in zip(c_in, c_skip, D, strict=True))
    with torch.device("meta"):
        assert closed == n_params(smp_model("unet_resnet34").decoder) == 3_151_552


def test_unetplusplus_decoder_closed_form():
    c, n = RESNET34_MAPS, 5

    def width(i, j):
        return D[n - 2 - i] if j > 0 and i + j == n - 1 else c[i]

    nodes = sum(double_conv(width(i + 1, j - 1) + j * c[i], width(i, j)) for j in range(1, n) for i in range(n - j))
    closed = nodes + double_conv(D[3], D[4])
    with torch.device("meta"):
        assert closed == n_params(smp_model("unetplusplus_resnet34").decoder) == 4_793_792


def test_fpn_decoder_and_head_closed_form():
    p, s = 256, 128
    pyramid = sum(conv(1, ch, p, bias=True) for ch in RESNET34_MAPS[1:])
    branch = 4 * (conv(3, p, s) + 2 * s) + 3 * (conv(3, s, s) + 2 * s)
    with torch.device("meta"):
        reference = smp_model("fpn_resnet34")
    assert pyramid == 246_784 and branch == 1_623_808
    assert pyramid + branch == n_params(reference.decoder)
    assert conv(1, s, 21, bias=True) == n_params(reference.segmentation_head) == 2_709


def test_pspnet_decoder_and_head_closed_form():
    from segmentation_models_pytorch.decoders.pspnet.decoder import PSPModule

    c = 128
    pyramid = 4 * c * (c // 4) + 7 * (c // 4)
    assert pyramid == n_params(PSPModule(c)) == n_params(PyramidPooling(c)) == 16_608
    with torch.device("meta"):
        reference = smp_model("pspnet_resnet34")
    assert pyramid + conv(1, 2 * c, 512) + 2 * 512 == n_params(reference.decoder)
    assert conv(3, 512, 21, bias=True) == n_params(reference.segmentation_head) == 96_789


def test_pyramid_pooling_concatenates_the_branches_before_the_input():
    block = PyramidPooling(8, bins=(1, 2), branch_channels=3).eval()
    x = torch.randn(2, 8, 5, 7)
    y = block(x)
    assert y.shape == (2, 2 * 3 + 8, 5, 7) and block.out_channels == 14
    torch.testing.assert_close(y[:, 6:], x)
    # The 1×1 bin is one pooled value per channel, broadcast over the map.
    assert torch.allclose(y[:, :3], y[:, :3, :1, :1].expand(-1, -1, 5, 7))


# --- bad input ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_bad_builder_arguments(name):
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        zoo.create_model(name, num_classes=0)


@pytest.mark.parametrize("name", ["unet_resnet34", "unetplusplus_resnet34"])
def test_bad_decoder_channels(name):
    with torch.device("meta"):
        with pytest.raises(ValueError, match="one width per decoder stage, 5 here, got 3"):
            zoo.create_model(name, decoder_channels=(64, 32, 16))
        with pytest.raises(TypeError, match="decoder_channels must be a sequence"):
            zoo.create_model(name, decoder_channels=16)
        with pytest.raises(ValueError, match="decoder_channels entry"):
            zoo.create_model(name, decoder_channels=(64, 32, 16, 8, 0))


def test_bad_images_are_clear_errors():
    with torch.device("meta"):
        model = zoo.create_model("fpn_resnet34", in_chans=1)
    with pytest.raises(ValueError, match="FPN expects 1 input channels"):
        model(torch.randn(1, 3, 64, 64, device="meta"))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 1, 64, 64, dtype=torch.long, device="meta"))
    with pytest.raises(ValueError, match="4-D batch"):
        model(torch.randn(1, 64, 64, device="meta"))


def test_bad_parts():
    with torch.device("meta"), pytest.raises(ValueError, match="segmentation_channels must be a multiple of 32"):
        zoo.create_model("fpn_resnet34", segmentation_channels=48)
    with pytest.raises(ValueError, match="depth must be 3, 4 or 5"):
        ResNetEncoder("resnet34", depth=6)
    with torch.device("meta"), pytest.raises(ValueError, match="must name a zoo ResNet"):
        ResNetEncoder("vgg11")
    with pytest.raises(TypeError, match="bins must be a non-empty sequence"):
        PyramidPooling(8, bins=())
    with pytest.raises(ValueError, match="each bin must be a positive int"):
        PyramidPooling(8, bins=(1, 0))
    with pytest.raises(ValueError, match="branch_channels"):
        PyramidPooling(2, bins=(1, 2, 3))
