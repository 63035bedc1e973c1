"""Xception against timm's legacy_xception: parameters, outputs, features and FLOPs."""

import pytest
import timm
import torch
from reference_models import randomize_

import zoo
import zoo.models.xception  # noqa: F401  (registers the builder)
from zoo.analysis.flops import count_flops


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def loaded():
    """(reference, ours) in eval mode, ours holding the reference's random weights."""
    reference = randomize_(timm.create_model("legacy_xception", pretrained=False)).eval()
    ours = zoo.create_model("xception").eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    return reference, ours


@pytest.mark.parametrize("side", [7, 32])  # the smallest input the valid stem takes, and the training data's
def test_parameters_and_outputs_match_timm(loaded, side):
    reference, ours = loaded
    assert n_params(ours) == n_params(reference) == 22_855_952  # timm's model card
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def test_features_only_matches_feature_info(loaded):
    reference, ours = loaded
    features = zoo.create_model("xception", features_only=True)
    zoo.load_reference_weights(features, reference.state_dict())  # the head is skipped
    assert not any(key.startswith("fc.") for key in features.state_dict())
    info = features.feature_info
    assert info.channels() == [64, 128, 256, 728, 2048] == [i["num_chs"] for i in reference.feature_info]
    assert info.reduction() == [2, 4, 8, 16, 32] == [i["reduction"] for i in reference.feature_info]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = features.eval()(x)
        # timm taps the blocks after the ReLU that opens the next block; ours are the block outputs.
        expected = reference.forward_intermediates(x, intermediates_only=True)
    assert [m.shape for m in maps] == [e.shape for e in expected]
    torch.testing.assert_close(maps[0], expected[0], rtol=1e-5, atol=1e-5)
    for ours_map, timm_map in zip(maps[1:4], expected[1:4], strict=True):
        torch.testing.assert_close(ours_map.relu(), timm_map, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(maps[4], expected[4], rtol=1e-5, atol=1e-5)


def test_fvcore_equals_closed_form(loaded):
    reference, ours = loaded
    result = count_flops(ours, 32)
    assert result.macs == result.macs_closed_form
    assert all(row.macs == row.macs_closed_form for row in result.layers)


def test_training_mode_api_and_errors(loaded):
    model = zoo.create_model("xception", num_classes=5, in_chans=1)
    assert n_params(model) == n_params(timm.create_model("legacy_xception", num_classes=5, in_chans=1))
    output = model.train()(torch.randn(2, 1, 32, 32))
    assert isinstance(output, torch.Tensor) and output.shape == (2, 5)
    with pytest.raises(ValueError, match=r"expects 1 input channels.*got 3"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="num_classes"):
        zoo.create_model("xception", num_classes=-1)
    reference, ours = loaded
    with torch.no_grad():
        pooled = ours.forward_head(ours.forward_features(torch.randn(1, 3, 32, 32)), pre_logits=True)
    assert pooled.shape == (1, ours.num_features) == (1, 2048)
