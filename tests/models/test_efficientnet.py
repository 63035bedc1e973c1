"""EfficientNet-B0 against torchvision (and timm's feature layout): parameters, outputs, features, FLOPs."""

import pytest
import timm
import torch
import torchvision
from reference_models import randomize_

import zoo
import zoo.models.efficientnet  # noqa: F401  (registers the builder)
from zoo.analysis.flops import count_flops
from zoo.layers.inverted_residual import InvertedResidual
from zoo.models.efficientnet import EfficientNet


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def pair():
    reference = randomize_(torchvision.models.efficientnet_b0(weights=None)).eval()
    ours = zoo.create_model("efficientnet_b0").eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    return ours, reference


def test_matches_torchvision_parameters_and_outputs(pair):
    ours, reference = pair
    meta = torchvision.models.get_model_weights("efficientnet_b0").DEFAULT.meta
    assert n_params(ours) == n_params(reference) == meta["num_params"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def test_norm_layers_match_torchvision(pair):
    ours, reference = pair

    def norms(model):
        return [(m.eps, m.momentum) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    assert norms(ours) == norms(reference)
    assert norms(ours)[0] == (1e-5, 0.1)  # B0 keeps PyTorch's defaults; only EfficientNetV2 uses eps 1e-3


def test_stochastic_depth_rates_match_torchvision(pair):
    ours, reference = pair
    theirs = [m.stochastic_depth.p for m in reference.modules() if hasattr(m, "stochastic_depth")]
    assert [m.drop_path_rate for m in ours.modules() if isinstance(m, InvertedResidual)] == theirs
    assert theirs[0] == 0.0 and theirs[-1] == pytest.approx(0.2 * 15 / 16)


def test_stochastic_depth_is_identity_in_eval_only():
    model = randomize_(zoo.create_model("efficientnet_b0")).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        for module in model.modules():  # keep BN on running statistics: only the drops may differ
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
        torch.manual_seed(0)
        first = model(x)
        torch.manual_seed(1)
        assert not torch.allclose(first, model(x))


def test_features_only_channels_and_exact_strides(pair):
    ours, reference = pair
    expected = timm.create_model("efficientnet_b0", features_only=True).feature_info
    features = zoo.create_model("efficientnet_b0", features_only=True).eval()
    zoo.load_reference_weights(features, reference.state_dict())
    assert features.feature_info.channels() == expected.channels() == [16, 24, 40, 112, 320]
    assert features.feature_info.reduction() == expected.reduction() == [2, 4, 8, 16, 32]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = features(x)
        # torchvision's features[:i] ends after the last block at each stride.
        theirs = [reference.features[:end](x) for end in (2, 3, 4, 6, 8)]
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4, 2]
    for mine, their in zip(maps, theirs, strict=True):
        torch.testing.assert_close(mine, their, rtol=1e-5, atol=1e-5)


def test_num_classes_zero_and_in_chans():
    model = zoo.create_model("efficientnet_b0", num_classes=0, in_chans=1).eval()
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 1280)
    with pytest.raises(ValueError, match="depth_mult"):
        EfficientNet(depth_mult=0)


def test_fvcore_equals_closed_form(pair):
    ours, _ = pair
    result = count_flops(ours, 64)
    assert result.macs == result.macs_closed_form


@pytest.mark.slow
def test_conv_linear_macs_equal_torchvision_ops():
    published = torchvision.models.get_model_weights("efficientnet_b0").DEFAULT.meta["_ops"]
    result = count_flops("efficientnet_b0", 224)
    assert abs(sum(r.macs for r in result.layers if r.type in ("Conv2d", "Linear")) / 1e9 - published) <= 0.0005


def test_wrong_input_raises(pair):
    ours, _ = pair
    with pytest.raises(ValueError, match=r"expects 3 input channels.*got 1"):
        ours(torch.randn(1, 1, 64, 64))
    with pytest.raises(TypeError, match="floating-point"):
        ours(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
