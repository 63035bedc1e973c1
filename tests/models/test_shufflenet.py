"""ShuffleNet V2 against torchvision: parameters, outputs, stage maps, and fvcore's MAC count against the
closed form."""

import pytest
import torch
from reference_models import randomize_, reference_model

import zoo
import zoo.models.shufflenet  # noqa: F401  (registers the builders)
from zoo.analysis.flops import count_flops
from zoo.models.features import FeatureListNet

BUILDERS = ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def reference_stage_maps(reference, x):
    """torchvision's maps at our feature_info modules: maxpool, stage2, stage3, conv5."""
    x = reference.maxpool(reference.conv1(x))
    c3 = reference.stage2(x)
    c4 = reference.stage3(c3)
    return [x, c3, c4, reference.conv5(reference.stage4(c4))]


@pytest.mark.parametrize("name", BUILDERS)
def test_matches_torchvision(name):
    reference = randomize_(reference_model(name)).eval()
    ours = zoo.create_model(name).eval()
    assert n_params(ours) == n_params(reference)
    zoo.load_reference_weights(ours, reference.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
        features = FeatureListNet(ours)
        maps = features(x)
        for ours_map, reference_map in zip(maps, reference_stage_maps(reference, x), strict=True):
            torch.testing.assert_close(ours_map, reference_map, rtol=1e-5, atol=1e-5)
    assert [m.shape[1] for m in maps] == features.feature_info.channels()
    assert [32 // m.shape[-1] for m in maps] == features.feature_info.reduction() == [4, 8, 16, 32]
    flops = count_flops(ours, 64)
    assert flops.macs == flops.macs_closed_form


def test_features_only_drops_the_head_and_loads_reference_weights():
    reference = randomize_(reference_model("shufflenet_v2_x0_5")).eval()
    features = zoo.create_model("shufflenet_v2_x0_5", features_only=True, out_indices=(1, -1)).eval()
    zoo.load_reference_weights(features, reference.state_dict())  # fc.* is skipped: no head here
    assert features.feature_info.module_name() == ["stage2", "conv5"]
    assert not any(key.startswith("head.") for key in features.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        c3, c5 = features(x)
        _, r3, _, r5 = reference_stage_maps(reference, x)
    torch.testing.assert_close(c3, r3)
    torch.testing.assert_close(c5, r5)


def test_in_chans_num_classes_and_errors():
    reference = reference_model("shufflenet_v2_x1_0", num_classes=7)
    model = zoo.create_model("shufflenet_v2_x1_0", in_chans=1, num_classes=7).eval()
    # One input channel instead of three removes 2·9·24 stem weights (9·C_in·24 in closed form).
    assert n_params(model) == n_params(reference) - 2 * 9 * 24
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        hidden = model.forward_head(model.forward_features(x), pre_logits=True)
    assert hidden.shape == (2, model.num_features) == (2, 1024)
    with pytest.raises(ValueError, match=r"expects 1 input channels.*got 3"):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="num_classes"):
        zoo.create_model("shufflenet_v2_x1_0", num_classes=-1)
    model.reset_classifier(0)
    with torch.no_grad():
        torch.testing.assert_close(model(x), hidden)
