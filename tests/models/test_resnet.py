"""ResNet family options against torchvision and timm: dilation, in_chans, features_only (the plain parity of
every variant is tests/models/test_parity.py, its published counts tests/analysis/test_flops.py)."""

import pytest
import torch
from reference_models import randomize_, reference_model

import zoo


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "flags, strides", [([False, False, True], [4, 8, 16, 16]), ([False, True, True], [4, 8, 8, 8])]
)
def test_dilated_resnet_matches_torchvision(flags, strides):
    reference = randomize_(reference_model("resnet50", replace_stride_with_dilation=flags)).eval()
    ours = zoo.create_model("resnet50", replace_stride_with_dilation=flags).eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    assert ours.feature_info.reduction() == strides
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
        maps = zoo.create_model("resnet50", features_only=True, replace_stride_with_dilation=flags)(x)
    assert [64 // m.shape[-1] for m in maps] == strides


def test_dilation_flags_are_validated():
    with pytest.raises(ValueError, match="3 booleans"):
        zoo.create_model("resnet50", replace_stride_with_dilation=[True])


@pytest.mark.parametrize("name", ["resnet18", "seresnext50_32x4d"])
def test_in_chans_and_num_classes_match_timm(name):
    import timm

    reference = timm.create_model(name, in_chans=1, num_classes=7)
    ours = zoo.create_model(name, in_chans=1, num_classes=7)
    assert n_params(ours) == n_params(reference)
    assert ours(torch.randn(2, 1, 32, 32)).shape == (2, 7)


def test_num_classes_zero_returns_pooled_features():
    model = zoo.create_model("resnet18", num_classes=0).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 512)


def test_features_only_out_indices_and_reference_weights():
    import torchvision

    reference = randomize_(torchvision.models.resnet18(weights=None)).eval()
    features = zoo.create_model("resnet18", features_only=True, out_indices=(1, -1)).eval()
    zoo.load_reference_weights(features, reference.state_dict())  # fc.* is skipped: no head here
    assert features.feature_info.channels() == [128, 512]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        c3, c5 = features(x)
        r = reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))
        r3 = reference.layer2(reference.layer1(r))
        r5 = reference.layer4(reference.layer3(r3))
    torch.testing.assert_close(c3, r3)
    torch.testing.assert_close(c5, r5)


@pytest.mark.parametrize("bad", [(4,), (0, 0), (2, 1), "1"])
def test_bad_out_indices(bad):
    with pytest.raises((ValueError, TypeError), match="out_indices"):
        zoo.create_model("resnet18", features_only=True, out_indices=bad)
