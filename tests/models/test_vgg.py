"""VGG and AlexNet against torchvision (and timm for in_chans/num_classes): parameters, outputs, stage maps,
dropout placement, and fvcore's MAC count against the closed form."""

import pytest
import torch
from reference_models import randomize_, reference_model
from torch import nn

import zoo
import zoo.models.vgg  # noqa: F401  (registers the builders)
from zoo.analysis.flops import count_flops
from zoo.models.features import FeatureListNet

BUILDERS = ["alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def loaded_pair(name, **kwargs):
    """A randomised torchvision model and ours holding the same weights, both in eval mode."""
    # torchvision's VGG re-initialises its 100M+ weights, which randomize_ then perturbs anyway: skip that.
    init = {} if name == "alexnet" else {"init_weights": False}
    reference = randomize_(reference_model(name, **init, **kwargs)).eval()
    with torch.device("meta"):  # the strict load below overwrites every parameter and buffer
        ours = zoo.create_model(name, **kwargs)
    ours.to_empty(device="cpu")
    zoo.load_reference_weights(ours, reference.state_dict())
    return reference, ours.eval()


def reference_stage_maps(reference, x):
    """torchvision's ``features`` output after each of its max-pools: our stage boundaries."""
    maps = []
    for layer in reference.features:
        x = layer(x)
        if isinstance(layer, nn.MaxPool2d):
            maps.append(x)
    return maps


@pytest.mark.parametrize("name", BUILDERS)
def test_matches_torchvision(name):
    reference, ours = loaded_pair(name)
    assert n_params(ours) == n_params(reference)
    side = ours.min_input_size[0]  # 32 for VGG, 63 for AlexNet
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
        features = FeatureListNet(ours)
        maps, reference_maps = features(x), reference_stage_maps(reference, x)
        for ours_map, reference_map in zip(maps, reference_maps, strict=True):
            torch.testing.assert_close(ours_map, reference_map, rtol=1e-5, atol=1e-5)
        # Dropout sits where torchvision's does: in training, the same seed draws the same masks.
        torch.manual_seed(1)
        expected = reference.classifier.train()(torch.flatten(reference.avgpool(reference_maps[-1]), 1))
        torch.manual_seed(1)
        torch.testing.assert_close(ours.train().forward_head(reference_maps[-1]), expected, rtol=1e-5, atol=1e-5)
    assert [m.shape[1] for m in maps] == features.feature_info.channels()
    if name != "alexnet":  # same-padded: every pool halves the side exactly
        assert [side // m.shape[-1] for m in maps] == features.feature_info.reduction() == [2, 4, 8, 16, 32]
    flops = count_flops(ours, 64)
    assert flops.macs == flops.macs_closed_form


def test_alexnet_layout_and_minimum_input():
    model = zoo.create_model("alexnet", num_classes=0).eval()
    # 11×11/4 stem then one 3×3/2 pool per stage: 4·2, ·2, ·2.
    assert model.feature_info.reduction() == [8, 16, 32]
    assert model.feature_info.channels() == [64, 192, 256]
    assert model.min_input_size == (63, 63)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 63, 63)).shape == (1, 4096)
    with pytest.raises(ValueError, match=r"at least 63×63 pixels.*got 62×63"):  # nothing left for the last pool
        model(torch.randn(1, 3, 62, 63))


def test_in_chans_num_classes_and_errors_match_timm():
    import timm

    with torch.device("meta"):  # parameter shapes only: skip initialising 130M weights
        reference = timm.create_model("vgg11", pretrained=False, in_chans=1, num_classes=7)
    model = zoo.create_model("vgg11", in_chans=1, num_classes=7).eval()
    assert n_params(model) == n_params(reference)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
        hidden = model.forward_head(features, pre_logits=True)
        assert model(x).shape == (2, 7)
    assert features.shape[1] == model.feature_info[-1]["num_chs"] == 512
    assert hidden.shape == (2, model.head_hidden_size) == (2, 4096) and model.num_features == 512
    with pytest.raises(ValueError, match=r"expects 1 input channels.*got 3"):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"at least 32×32 pixels.*got 31×32"):
        model(torch.randn(2, 1, 31, 32))
    with pytest.raises(ValueError, match="num_classes"):
        zoo.create_model("vgg11", num_classes=-1)
    model.reset_classifier(0)  # no classifier: the model returns the 4096-vector
    with torch.no_grad():
        torch.testing.assert_close(model(x), hidden)


def test_vgg_depth_is_validated():
    from zoo.models.vgg import vgg_stages

    assert [len(stage) for stage in vgg_stages(16)] == [2, 2, 3, 3, 3]
    with pytest.raises(ValueError, match="11, 13, 16, 19.*got 18"):
        vgg_stages(18)
