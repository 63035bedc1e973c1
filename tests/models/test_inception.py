"""GoogLeNet and Inception-v3 against torchvision, Inception-v4 against timm: parameters, outputs, auxiliary
heads, features and FLOPs."""

import pytest
import timm
import torch
import torchvision
from reference_models import randomize_

import zoo
import zoo.models.inception  # noqa: F401  (registers the builders)
from zoo.analysis.flops import count_flops
from zoo.models.inception import GoogLeNetOutputs, InceptionOutputs

NAMES = ["googlenet", "inception_v3", "inception_v4"]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def build_reference(name, **kwargs):
    if name == "inception_v4":
        return timm.create_model(name, pretrained=False, **kwargs)
    # Weight initialisation is irrelevant here (randomize_ overwrites it) and slow: skip it on both sides.
    return getattr(torchvision.models, name)(weights=None, init_weights=False, **kwargs)


def build_ours(name, **kwargs):
    if name != "inception_v4":
        kwargs.setdefault("init_weights", False)
    return zoo.create_model(name, **kwargs)


def side_of(model):
    return model.min_input_size[0]


@pytest.fixture(scope="module", params=NAMES)
def loaded(request):
    """(name, reference, ours) in eval mode, ours holding the reference's random weights."""
    name = request.param
    reference = randomize_(build_reference(name)).eval()
    ours = build_ours(name).eval()
    zoo.load_reference_weights(ours, reference.state_dict())
    return name, reference, ours


def test_parameters_and_eval_outputs_match_reference(loaded):
    name, reference, ours = loaded
    assert n_params(ours) == n_params(reference)
    x = torch.randn(2, 3, side_of(ours), side_of(ours))  # the smallest input the architecture takes
    with torch.no_grad():
        expected, actual = reference(x), ours(x)
    assert isinstance(actual, torch.Tensor), "eval mode returns the logits tensor"
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_features_only_matches_feature_info(loaded):
    name, reference, ours = loaded
    features = build_ours(name, features_only=True)
    zoo.load_reference_weights(features, reference.state_dict())  # head and auxiliary heads are skipped
    assert not any(key.startswith(("fc.", "aux", "AuxLogits")) for key in features.state_dict())
    info = features.feature_info
    assert info.channels() == ours.feature_info.channels()
    assert info.reduction() == [2, 4, 8, 16, 32]
    # Shapes only, at the published input size: on the meta device nothing is computed.
    side = ours.default_input_size[0]
    maps = features.to("meta")(torch.empty(1, 3, side, side, device="meta"))
    assert [m.shape[1] for m in maps] == info.channels()
    for feature_map, reduction in zip(maps, info.reduction(), strict=True):
        if name == "googlenet":  # same-padded: exact
            assert feature_map.shape[-1] == side // reduction
        else:  # valid-padded: the nominal reduction, a few border pixels lost on the way
            assert abs(feature_map.shape[-1] - side / reduction) <= 0.15 * side / reduction + 1.5


def test_fvcore_equals_closed_form(loaded):
    name, reference, ours = loaded
    result = count_flops(ours, side_of(ours))
    assert result.macs == result.macs_closed_form
    assert result.params == n_params(reference)


# torchvision's documented counts: GoogLeNet without its auxiliary heads, Inception-v3 with its own.
DOCUMENTED_PARAMS = {"googlenet": 6_624_904, "inception_v3": 27_161_264}


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_without_aux_logits_matches_reference(name):
    reference = randomize_(build_reference(name, aux_logits=False)).eval()
    ours = build_ours(name, aux_logits=False).eval()
    assert n_params(ours) == n_params(reference)
    if name == "googlenet":
        assert n_params(ours) == DOCUMENTED_PARAMS[name]
    else:
        assert n_params(ours) < DOCUMENTED_PARAMS[name]
    zoo.load_reference_weights(ours, reference.state_dict())
    assert not any(key.startswith(("aux", "AuxLogits")) for key in ours.state_dict())
    ours.train()
    side = 75  # with no auxiliary head, Inception-v3 trains from 75 px
    assert ours.min_input_size == ((75, 75) if name == "inception_v3" else (15, 15))
    output = ours(torch.randn(2, 3, side, side))
    assert isinstance(output, torch.Tensor) and ours.aux_loss_weights == ()


def test_googlenet_training_outputs_and_transform_input_match_torchvision():
    # No dropout, so that the training-mode outputs are deterministic; BN uses batch statistics on both sides.
    kwargs = dict(num_classes=10, transform_input=True)
    reference = randomize_(build_reference("googlenet", dropout=0.0, dropout_aux=0.0, **kwargs))
    ours = build_ours("googlenet", drop_rate=0.0, aux_drop_rate=0.0, **kwargs)
    zoo.load_reference_weights(ours, reference.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected, actual = reference.train()(x), ours.train()(x)
    assert type(actual) is GoogLeNetOutputs and actual._fields == ("logits", "aux_logits2", "aux_logits1")
    assert all(output.shape == (2, 10) for output in actual)
    for ours_output, reference_output in zip(actual, expected, strict=True):
        torch.testing.assert_close(ours_output, reference_output, rtol=1e-5, atol=1e-5)
    assert ours.aux_loss_weights == (0.3, 0.3)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference.eval()(x), rtol=1e-5, atol=1e-5)


def test_inception_v3_training_returns_named_tuple_at_299():
    model = build_ours("inception_v3", num_classes=10).train()
    assert model.min_input_size == (299, 299)  # the auxiliary head's valid pool and 5×5 conv
    with torch.no_grad():
        output = model(torch.randn(2, 3, 299, 299))
    assert type(output) is InceptionOutputs and output._fields == ("logits", "aux_logits")
    assert output.logits.shape == output.aux_logits.shape == (2, 10)
    assert model.aux_loss_weights == (0.4,)
    assert model.eval().min_input_size == (75, 75)
    with pytest.raises(ValueError, match=r"at least 299×299 pixels in training mode.*got 75×75"):
        model.train()(torch.randn(2, 3, 75, 75))
    model.eval()
    with pytest.raises(ValueError, match=r"at least 75×75 pixels, got 74×80"):
        model(torch.randn(1, 3, 74, 80))
    with pytest.raises(ValueError, match=r"expects 3 input channels.*got 1"):
        model(torch.randn(1, 1, 75, 75))


def test_wrong_input_and_arguments_raise_value_error():
    with pytest.raises(ValueError, match=r"at least 15×15"):
        build_ours("googlenet", aux_logits=False)(torch.randn(1, 3, 14, 14))
    with pytest.raises(ValueError, match="transform_input"):
        build_ours("googlenet", in_chans=1, transform_input=True)
    with pytest.raises(ValueError, match="num_classes"):
        build_ours("inception_v4", num_classes=-1)


def test_default_initialisation_matches_torchvision():
    # torchvision draws weights from N(0, 0.1²); the auxiliary linear from N(0, 0.001²). Its 0.01 for the
    # auxiliary 5×5 conv sits on a wrapper that the initialisation never reads, so that conv gets 0.1 too.
    model = zoo.create_model("inception_v3")
    assert model.Mixed_6e.branch7x7[1].conv.weight.std().item() == pytest.approx(0.1, rel=0.05)
    assert model.AuxLogits.conv1.conv.weight.std().item() == pytest.approx(0.1, rel=0.05)
    assert model.AuxLogits.fc.weight.std().item() == pytest.approx(0.001, rel=0.05)


def test_in_chans_and_num_classes_match_timm():
    reference = timm.create_model("inception_v4", in_chans=1, num_classes=7)
    ours = zoo.create_model("inception_v4", in_chans=1, num_classes=7)
    assert n_params(ours) == n_params(reference)
    pooled = build_ours("googlenet", num_classes=0).eval()
    with torch.no_grad():
        assert pooled(torch.randn(1, 3, 32, 32)).shape == (1, 1024)
