"""MobileNet V1 against timm, V2 and V3 against torchvision: parameters, outputs, features, FLOPs."""

from itertools import pairwise

import pytest
import timm
import torch
import torchvision
from reference_models import randomize_
from timm.models.efficientnet import _gen_mobilenet_v1

import zoo
import zoo.models.mobilenet  # noqa: F401  (registers the builders)
from zoo.analysis.flops import count_flops

V1_WIDTHS = {"mobilenet_v1": 1.0, "mobilenet_v1_075": 0.75, "mobilenet_v1_050": 0.5, "mobilenet_v1_025": 0.25}
TIMM_NAMES = {
    "mobilenet_v1": "mobilenetv1_100",
    "mobilenet_v2": "mobilenetv2_100",
    "mobilenet_v3_large": "mobilenetv3_large_100",
    "mobilenet_v3_small": "mobilenetv3_small_100",
}
MODELS = [*V1_WIDTHS, "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def reference(name, **kwargs):
    """timm's mobilenetv1_100 (at the builder's channel multiplier) or torchvision's model, random weights."""
    if name in V1_WIDTHS:  # timm registers only α = 1; its generator takes the multiplier
        return _gen_mobilenet_v1("mobilenetv1_100", channel_multiplier=V1_WIDTHS[name], **kwargs)
    return getattr(torchvision.models, name)(weights=None, **kwargs)


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"])
def test_documented_parameter_counts(name):
    meta = torchvision.models.get_model_weights(name).DEFAULT.meta
    assert n_params(zoo.create_model(name)) == meta["num_params"]


@pytest.mark.parametrize("name", sorted(V1_WIDTHS))
def test_mobilenet_v1_closed_form_parameters(name):
    # Paper Table 1 widths scaled by α: a 3×3 stem conv, then per block a 3×3 depthwise + 1×1 pointwise
    # conv, every conv followed by BN (γ, β); a 1000-way linear head.
    alpha = V1_WIDTHS[name]
    widths = [int(c * alpha) for c in [32, 64, 128, 128, 256, 256] + [512] * 6 + [1024, 1024]]
    expected = 27 * widths[0] + 2 * widths[0]
    for c_in, c_out in pairwise(widths):
        expected += 9 * c_in + 2 * c_in + c_in * c_out + 2 * c_out
    expected += widths[-1] * 1000 + 1000
    assert n_params(zoo.create_model(name)) == expected
    # Published in millions (paper Table 6): 4.2, 2.6, 1.3, 0.5.
    assert round(expected / 1e6, 1) == {1.0: 4.2, 0.75: 2.6, 0.5: 1.3, 0.25: 0.5}[alpha]


@pytest.mark.parametrize("name", MODELS)
def test_features_only_channels_and_exact_strides_match_timm(name):
    timm_name = TIMM_NAMES.get(name, "mobilenetv1_100")
    if name in V1_WIDTHS:
        expected = _gen_mobilenet_v1(timm_name, channel_multiplier=V1_WIDTHS[name], features_only=True).feature_info
    else:
        expected = timm.create_model(timm_name, features_only=True).feature_info
    features = zoo.create_model(name, features_only=True).eval()
    assert features.feature_info.channels() == expected.channels()
    assert features.feature_info.reduction() == expected.reduction() == [2, 4, 8, 16, 32]
    with torch.no_grad():
        maps = features(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == expected.channels()
    assert [m.shape[-2:] for m in maps] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]


def test_mobilenet_v3_features_equal_torchvision_intermediate_maps():
    ref = randomize_(torchvision.models.mobilenet_v3_large(weights=None)).eval()
    features = zoo.create_model("mobilenet_v3_large", features_only=True).eval()
    zoo.load_reference_weights(features, ref.state_dict())  # the head's keys are skipped
    assert features.feature_info.module_name() == ["stage1", "stage2", "stage3", "stage4", "last_conv"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = features(x)
        # torchvision's features[:i] ends after the last block at each stride, and after the last conv.
        expected = [ref.features[:end](x) for end in (2, 4, 7, 13, 17)]
    for ours, theirs in zip(maps, expected, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("mobilenet_v2", {"width_mult": 0.5}),
        ("mobilenet_v3_small", {"width_mult": 0.75}),
        ("mobilenet_v3_large", {"dilated": True}),
    ],
)
def test_torchvision_options(name, kwargs):
    ref = randomize_(reference(name, **kwargs)).eval()
    ours = zoo.create_model(name, **kwargs).eval()
    assert n_params(ours) == n_params(ref)
    zoo.load_reference_weights(ours, ref.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    if kwargs.get("dilated"):  # DeepLabV3's backbone: the last stage dilated, output stride 16
        assert ours.feature_info.reduction() == [2, 4, 8, 16, 16]
        maps = zoo.create_model(name, features_only=True, **kwargs)(x)
        assert [64 // m.shape[-1] for m in maps] == [2, 4, 8, 16, 16]


def test_mobilenet_v3_pre_logits_is_the_hidden_layer():
    ref = randomize_(torchvision.models.mobilenet_v3_small(weights=None)).eval()
    ours = zoo.create_model("mobilenet_v3_small").eval()
    zoo.load_reference_weights(ours, ref.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = ref.classifier[:2](torch.flatten(ref.avgpool(ref.features(x)), 1))
        torch.testing.assert_close(ours.forward_head(ours.forward_features(x), pre_logits=True), expected)
        assert zoo.create_model("mobilenet_v3_small", num_classes=0).eval()(x).shape == (1, ours.head_hidden_size)


@pytest.mark.parametrize("name", ["mobilenet_v1_025", "mobilenet_v3_small"])
def test_in_chans_and_num_classes_match_timm(name):
    if name in V1_WIDTHS:
        ref = _gen_mobilenet_v1("mobilenetv1_100", channel_multiplier=V1_WIDTHS[name], in_chans=1, num_classes=7)
    else:
        ref = timm.create_model(TIMM_NAMES[name], in_chans=1, num_classes=7)
    ours = zoo.create_model(name, in_chans=1, num_classes=7)
    assert n_params(ours) == n_params(ref)
    assert ours(torch.randn(2, 1, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("name", ["mobilenet_v1_025", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"])
def test_fvcore_equals_closed_form(name):
    result = count_flops(zoo.create_model(name), 64)
    assert result.macs == result.macs_closed_form


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"])
def test_conv_linear_macs_equal_torchvision_ops(name):
    published = torchvision.models.get_model_weights(name).DEFAULT.meta["_ops"]  # GMACs, 3 decimals
    result = count_flops(name, 224)
    conv_linear = sum(r.macs for r in result.layers if r.type in ("Conv2d", "Linear")) / 1e9
    assert abs(conv_linear - published) <= 0.0005


@pytest.mark.slow
def test_mobilenet_v1_published_mult_adds():
    result = count_flops("mobilenet_v1", 224)  # paper Table 8: 569 million mult-adds
    assert round(sum(r.macs for r in result.layers if r.type in ("Conv2d", "Linear")) / 1e6) == 569


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_classes": -1}, ValueError, "num_classes"),
        ({"in_chans": 0}, ValueError, "in_chans"),
        ({"width_mult": 0}, ValueError, "width_mult"),
        ({"dilated": "yes"}, TypeError, "dilated"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        zoo.create_model("mobilenet_v3_large", **kwargs)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v3_small"])
def test_wrong_input_raises(name):
    model = zoo.create_model(name)
    with pytest.raises(ValueError, match=r"expects 3 input channels.*got 1"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match=r"4-D batch.*got a 3-D tensor"):
        model(torch.randn(3, 64, 64))
