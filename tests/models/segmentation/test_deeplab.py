"""DeepLabv3 against torchvision (parameter counts, its published figures, outputs after loading its randomised
weights), DeepLabv3+ against a closed-form parameter count, the ASPP rates each output stride puts in the
built model, and a small overfitting run on the synthetic shapes."""

from contextlib import contextmanager
from unittest import mock

import pytest
import torch
import torch.nn.functional as F  # noqa: N812
import torchvision.models.segmentation as tv_segmentation
from reference_models import randomize_
from torchvision.models import ResNet50_Weights

import zoo
import zoo.models.segmentation.deeplab  # noqa: F401  (registers the builders)
from zoo.data.segmentation import SyntheticSegmentation
from zoo.registry import model_task

# torchvision's parameter counts for 21 classes: (aux_loss=False, aux_loss=True).
TORCHVISION_PARAMS = {
    "deeplabv3_resnet50": (39_638_869, 42_004_074),
    "deeplabv3_resnet101": (58_630_997, 60_996_202),
    "deeplabv3_mobilenet_v3_large": (11_025_477, 11_029_328),
}
TORCHVISION_WEIGHTS = {
    "deeplabv3_resnet50": tv_segmentation.DeepLabV3_ResNet50_Weights,
    "deeplabv3_resnet101": tv_segmentation.DeepLabV3_ResNet101_Weights,
    "deeplabv3_mobilenet_v3_large": tv_segmentation.DeepLabV3_MobileNet_V3_Large_Weights,
}


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@contextmanager
def _no_random_init():
    """Skip the random initialisation, most of a build's time: the tests that use it count parameters or
    overwrite every weight and buffer with the reference's (strict loading)."""
    keep = lambda tensor, *args, **kwargs: tensor  # noqa: E731
    with mock.patch.multiple(torch.nn.init, kaiming_normal_=keep, kaiming_uniform_=keep, normal_=keep, uniform_=keep):
        yield


def build_uninitialised(name, **kwargs):
    with _no_random_init():
        return zoo.create_model(name, **kwargs)


@pytest.mark.parametrize("aux_loss", [False, True])
@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_count_equals_torchvision(name, aux_loss):
    model = build_uninitialised(name, num_classes=21, aux_loss=aux_loss)
    assert n_params(model) == TORCHVISION_PARAMS[name][aux_loss]
    assert model_task(name) == "segmentation"


@pytest.mark.parametrize("name", sorted(TORCHVISION_WEIGHTS))
def test_aux_counts_are_torchvisions_published_figures(name):
    # The released checkpoints have the auxiliary head; their metadata states their size.
    assert TORCHVISION_WEIGHTS[name].COCO_WITH_VOC_LABELS_V1.meta["num_params"] == TORCHVISION_PARAMS[name][True]


@pytest.mark.parametrize(
    "name",
    [
        "deeplabv3_resnet50",
        "deeplabv3_mobilenet_v3_large",
        # ResNet-101 differs from ResNet-50 only in layer3's depth; its build alone takes seconds.
        pytest.param("deeplabv3_resnet101", marks=pytest.mark.slow),
    ],
)
def test_outputs_equal_torchvision(name):
    reference = getattr(tv_segmentation, name)(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    reference = randomize_(reference).eval()
    ours = build_uninitialised(name, num_classes=21, aux_loss=True).eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    for size in [(64, 64), (33, 47)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected, actual = reference(x), ours(x)
        assert list(actual) == list(expected) == ["out", "aux"]
        for key in ("out", "aux"):
            assert actual[key].shape == (1, 21, *size)
            torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-5)


def test_mobilenet_backbone_is_torchvisions_dilated_one():
    model = build_uninitialised("deeplabv3_mobilenet_v3_large", aux_loss=True)
    assert model.output_stride == 16
    # torchvision's C4 block and the two after it: stride 1, dilation 2, 5×5 depthwise (padding 4).
    for block in model.backbone.stage5:
        assert block.depthwise.conv.stride == (1, 1) and block.depthwise.conv.dilation == (2, 2)
    assert model.aux_layer == "stage3.0" and model.aux_classifier.conv.conv.in_channels == 40
    assert model.classifier.aspp.convs[0].conv.in_channels == 960
    assert model.classifier.aspp.atrous_rates == (12, 24, 36)  # torchvision's default, kept at stride 16


def _aspp_dilations(model):
    return [branch.conv.dilation[0] for branch in model.classifier.aspp.convs[1:4]]


@pytest.mark.parametrize(
    "name, kwargs, output_stride, rates, layer4_dilation",
    [
        ("deeplabv3_resnet50", {}, 8, [12, 24, 36], 4),
        ("deeplabv3_resnet50", {"output_stride": 16}, 16, [6, 12, 18], 2),
        ("deeplabv3plus_resnet50", {}, 16, [6, 12, 18], 2),
        ("deeplabv3plus_resnet50", {"output_stride": 8}, 8, [12, 24, 36], 4),
    ],
)
def test_aspp_rates_follow_the_output_stride(name, kwargs, output_stride, rates, layer4_dilation):
    model = build_uninitialised(name, **kwargs)
    assert model.output_stride == output_stride
    assert _aspp_dilations(model) == rates
    layer4 = model.backbone.layer4
    assert all(block.conv2.conv.stride == (1, 1) for block in layer4)
    assert layer4[-1].conv2.conv.dilation == (layer4_dilation, layer4_dilation)
    assert model.backbone.layer2[0].conv2.conv.stride == (2, 2)
    assert model.backbone.layer3[0].conv2.conv.stride == ((1, 1) if output_stride == 8 else (2, 2))


def _resnet50_body_params():
    # torchvision's published ResNet-50 size, less its 2048 → 1000 classifier.
    return ResNet50_Weights.IMAGENET1K_V1.meta["num_params"] - (2048 * 1000 + 1000)


def _conv_bn(c_in, c_out, k):
    return k * k * c_in * c_out + 2 * c_out


@pytest.mark.parametrize("num_classes, aux_loss", [(21, False), (11, True)])
def test_deeplabv3plus_parameter_count_closed_form(num_classes, aux_loss):
    aspp = _conv_bn(2048, 256, 1) + 3 * _conv_bn(2048, 256, 3) + _conv_bn(2048, 256, 1) + _conv_bn(5 * 256, 256, 1)
    decoder = _conv_bn(256, 48, 1) + _conv_bn(256 + 48, 256, 3) + _conv_bn(256, 256, 3)
    logits = 256 * num_classes + num_classes
    aux = _conv_bn(1024, 256, 3) + 256 * num_classes + num_classes if aux_loss else 0
    expected = _resnet50_body_params() + aspp + decoder + logits + aux
    model = build_uninitialised("deeplabv3plus_resnet50", num_classes=num_classes, aux_loss=aux_loss)
    assert n_params(model) == expected


def test_deeplabv3plus_output_size_equals_input_size():
    model = zoo.create_model("deeplabv3plus_resnet50", num_classes=5, aux_loss=True).eval()
    for size in [(33, 47), (64, 64)]:
        with torch.no_grad():
            out = model(torch.randn(1, 3, *size))
        assert list(out) == ["out", "aux"]
        assert out["out"].shape == out["aux"].shape == (1, 5, *size)
        assert torch.isfinite(out["out"]).all()


def test_deeplabv3plus_decoder_reads_the_stride_4_map():
    model = build_uninitialised("deeplabv3plus_resnet50")
    assert model.low_level_layer == "layer1"
    assert model.classifier.low_level.conv.in_channels == 256
    assert model.classifier.low_level.conv.out_channels == 48
    assert model.classifier.fuse[0].conv.in_channels == 304


def _fit(model, images, masks, steps, lr):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        outputs = model(images)
        loss = F.cross_entropy(outputs["out"], masks, ignore_index=255)
        if "aux" in outputs:
            loss = loss + 0.5 * F.cross_entropy(outputs["aux"], masks, ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _synthetic_batch(num_images, size):
    data = SyntheticSegmentation(num_images, image_size=size, max_objects=2, seed=0)
    images, masks = zip(*(data[i] for i in range(num_images)), strict=True)
    return torch.stack(images), torch.stack(masks)


def test_mobilenet_deeplabv3_loss_falls_on_a_few_images():
    images, masks = _synthetic_batch(2, 32)
    model = zoo.create_model("deeplabv3_mobilenet_v3_large", num_classes=11)
    losses = _fit(model, images, masks, steps=10, lr=1e-3)
    assert losses[-1] < losses[0] / 2, losses  # 1.94 → 0.74 when written


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, num_images, steps",
    [
        ("deeplabv3_mobilenet_v3_large", 4, 40),  # 1.98 → 0.23 when written
        ("deeplabv3plus_resnet50", 2, 15),  # 2.27 → 0.25; ResNet-50's steps cost ~1 s each on a CPU
    ],
)
def test_overfits_synthetic_images(name, num_images, steps):
    images, masks = _synthetic_batch(num_images, 64)
    model = zoo.create_model(name, num_classes=11)
    losses = _fit(model, images, masks, steps=steps, lr=1e-3)
    assert losses[-1] < losses[0] / 5, losses


def test_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="output_stride must be 8 or 16"):
        zoo.create_model("deeplabv3_resnet50", output_stride=32)
    with pytest.raises(ValueError, match="num_classes"):
        zoo.create_model("deeplabv3_mobilenet_v3_large", num_classes=0)
    with pytest.raises(TypeError, match="aux_loss must be a bool"):
        zoo.create_model("deeplabv3plus_resnet50", aux_loss="yes")
    model = build_uninitialised("deeplabv3_mobilenet_v3_large")
    with pytest.raises(ValueError, match="4-D batch"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="3 input channels"):
        model(torch.randn(1, 1, 32, 32))
