"""FCN and LR-ASPP against torchvision: parameter counts (with and without the auxiliary head), outputs after
loading its randomised weights at even and odd sizes, the closed-form head counts of the module docstrings,
LR-ASPP's taps, a loss that falls on a few synthetic images, and bad input."""

import pytest
import torch
import torchvision
import torchvision.models.segmentation as tv_segmentation
from models.segmentation.test_deeplab import _fit, _synthetic_batch, build_uninitialised, n_params
from reference_models import randomize_

import zoo

# torchvision's counts at 21 classes: (aux_loss=False, aux_loss=True); LR-ASPP has no auxiliary head.
TORCHVISION_PARAMS = {
    "fcn_resnet50": (32_957_013, 35_322_218),
    "fcn_resnet101": (51_949_141, 54_314_346),
}


@pytest.mark.parametrize("aux_loss", [False, True])
@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_fcn_parameter_count_equals_torchvision(name, aux_loss):
    reference = getattr(tv_segmentation, name)(weights=None, weights_backbone=None, aux_loss=aux_loss)
    assert n_params(reference) == TORCHVISION_PARAMS[name][aux_loss]
    assert n_params(build_uninitialised(name, aux_loss=aux_loss)) == TORCHVISION_PARAMS[name][aux_loss]


def test_lraspp_parameter_count_equals_torchvision():
    assert n_params(build_uninitialised("lraspp_mobilenet_v3_large")) == 3_221_538


def _fcn_head_params(in_channels, num_classes):
    hidden = in_channels // 4
    return 9 * in_channels * hidden + 2 * hidden + hidden * num_classes + num_classes


def _lraspp_head_params(low, high, num_classes, inner=128):
    return 2 * high * inner + 2 * inner + (low + 1) * num_classes + (inner + 1) * num_classes


@pytest.mark.parametrize("num_classes", [2, 21])
def test_head_counts_are_the_closed_forms(num_classes):
    fcn = build_uninitialised("fcn_resnet50", num_classes=num_classes, aux_loss=True)
    assert n_params(fcn.classifier) == _fcn_head_params(2048, num_classes)
    assert n_params(fcn.aux_classifier) == _fcn_head_params(1024, num_classes)
    lraspp = build_uninitialised("lraspp_mobilenet_v3_large", num_classes=num_classes)
    assert n_params(lraspp.classifier) == _lraspp_head_params(40, 960, num_classes)
    # The rest is MobileNetV3-Large's features, torchvision's own count.
    assert n_params(lraspp.backbone) == n_params(torchvision.models.mobilenet_v3_large().features)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("fcn_resnet50", {"aux_loss": True}),
        ("lraspp_mobilenet_v3_large", {}),
        pytest.param("fcn_resnet101", {"aux_loss": True}, marks=pytest.mark.slow),
    ],
)
def test_outputs_equal_torchvision(name, kwargs):
    reference = getattr(tv_segmentation, name)(weights=None, weights_backbone=None, num_classes=21, **kwargs)
    reference = randomize_(reference).eval()
    ours = build_uninitialised(name, num_classes=21, **kwargs).eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    for size in [(64, 64), (33, 47)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected, actual = reference(x), ours(x)
        assert list(actual) == list(expected)
        for key in expected:
            assert actual[key].shape == (1, 21, *size)
            torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-5)


def test_lraspp_reads_the_stride_8_and_stride_16_maps():
    model = build_uninitialised("lraspp_mobilenet_v3_large")
    assert model.output_stride == 16
    seen = {}
    model.classifier.register_forward_hook(lambda module, args, output: seen.update(high=args[0], low=args[1]))
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 64, 96))
    assert seen["high"].shape == (1, 960, 4, 6)  # stride 16
    assert seen["low"].shape == (1, 40, 8, 12)  # stride 8


@pytest.mark.parametrize("name, steps", [("lraspp_mobilenet_v3_large", 14), ("fcn_resnet50", 8)])
def test_loss_falls_on_a_few_images(name, steps):
    images, masks = _synthetic_batch(2, 32)
    model = zoo.create_model(name, num_classes=11)
    losses = _fit(model, images, masks, steps=steps, lr=1e-3)
    assert losses[-1] < losses[0] / 2, losses


def test_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="num_classes"):
        zoo.create_model("fcn_resnet50", num_classes=0)
    with pytest.raises(TypeError, match="aux_loss must be a bool"):
        zoo.create_model("fcn_resnet50", aux_loss=1)
    with pytest.raises(TypeError, match="aux_loss"):
        zoo.create_model("lraspp_mobilenet_v3_large", aux_loss=True)  # torchvision's has no auxiliary head
    model = build_uninitialised("lraspp_mobilenet_v3_large")
    with pytest.raises(ValueError, match="3 input channels"):
        model(torch.randn(1, 1, 32, 32))
