"""The model API, checked for every registered classifier (a new model is tested on registration): forward and
backward, timm's forward_features / forward_head / get_classifier / reset_classifier, feature_info, the spec's
input sizes and the errors on bad input."""

import pytest
import torch

import zoo
from zoo.layers import ClassifierHead
from zoo.registry import model_spec

# Variants over 50 M parameters run under `pytest -m slow`; alexnet and vgg11 keep their families in the default run.
HEAVY_PARAMS = 50_000_000
FAMILY_REPRESENTATIVES = {"alexnet", "vgg11"}


def _param(name: str):
    published = model_spec(name).published
    heavy = published is not None and (published.params or 0) > HEAVY_PARAMS and name not in FAMILY_REPRESENTATIVES
    return pytest.param(name, marks=pytest.mark.slow) if heavy else name


MODELS = [_param(n) for n in zoo.list_models(task="classification")]


def input_side(model) -> int:
    """The spec's small test size, or more where the model's mode needs it (Inception-v3's auxiliary head)."""
    return max(*model.spec.test_input_size, *model.min_input_size)


def logits_of(output):
    """Training-mode outputs of models with auxiliary heads are named tuples; logits come first."""
    return output if isinstance(output, torch.Tensor) else output[0]


@pytest.fixture(scope="module", params=MODELS)
def built(request):
    return request.param, zoo.create_model(request.param, num_classes=5)


def test_forward_backward_shapes_and_finite(built):
    name, model = built
    model.train()
    side = input_side(model)
    x = torch.randn(2, 3, side, side, requires_grad=True)
    output = model(x)
    outputs = [output] if isinstance(output, torch.Tensor) else [o for o in output if o is not None]
    assert all(o.shape == (2, 5) and torch.isfinite(o).all() for o in outputs)
    sum(o.square().mean() for o in outputs).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"{name}: missing or bad gradient for {missing[:3]}"
    model.zero_grad(set_to_none=True)


def test_api_attributes(built):
    name, model = built
    model.eval()
    side = input_side(model)
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        logits = model.forward_head(features)
        direct = model(x)
    assert model.num_classes == 5 and model.in_chans == 3
    assert isinstance(direct, torch.Tensor), "eval mode returns the logits tensor"
    # A map (N, C, H, W) or, for the transformers that keep their tokens, a sequence (N, L, D).
    assert features.shape[1 if features.ndim == 4 else -1] == model.num_features
    assert pooled.shape == (1, model.head_hidden_size)
    assert torch.equal(logits, direct)
    assert isinstance(model.head, ClassifierHead) and model.get_classifier() is model.head.fc
    assert list(dict(model.named_children()))[-1] == "head", "the head is the last child"


def test_reset_classifier(built):
    name, model = built
    model.eval()
    x = torch.randn(1, 3, input_side(model), input_side(model))
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        model.reset_classifier(0)
        assert model.num_classes == 0 and isinstance(model.get_classifier(), torch.nn.Identity)
        torch.testing.assert_close(model(x), pooled)
        model.reset_classifier(3)
        assert model.num_classes == 3 and model(x).shape == (1, 3)
    classifier = model.get_classifier()
    assert isinstance(classifier, torch.nn.Linear) and classifier.in_features == model.head_hidden_size
    with pytest.raises(ValueError, match="num_classes must be an int >= 0"):
        model.reset_classifier(-1)
    model.reset_classifier(5)  # the module-scoped model goes on to the next tests as it came


def test_spec_sizes_are_accepted_and_below_the_minimum_refused(built):
    name, model = built
    spec = model_spec(name)
    assert spec.task == "classification" and spec is model.spec
    assert all(t >= m for t, m in zip(spec.test_input_size, spec.min_input_size, strict=True))
    assert all(d >= m for d, m in zip(spec.default_input_size, spec.min_input_size, strict=True))
    model.eval()
    height, width = spec.min_input_size
    with torch.no_grad():
        assert model(torch.randn(1, 3, height, width)).shape == (1, 5)
        with pytest.raises(ValueError, match="at least"):
            model(torch.randn(1, 3, height - 1, width))


def test_features_only_channels_and_strides_match_feature_info(built):
    name, model = built
    features_model = zoo.create_model(name, features_only=True)
    info = features_model.feature_info
    assert info.channels() == model.feature_info.channels()
    # A pyramid down to stride 32, or a single-scale network (ViT: every block at its patch size).
    assert info.reduction() == sorted(info.reduction())
    assert info.reduction()[-1] == 32 or len(set(info.reduction())) == 1
    # Valid-padded networks (min_input_size > 32) need room for their nominal strides.
    side = 96 if max(model.eval().min_input_size) <= 32 else 160
    with torch.no_grad():
        maps = features_model.eval()(torch.randn(1, 3, side, side))
    assert [m.shape[1] for m in maps] == info.channels()
    for feature_map, reduction in zip(maps, info.reduction(), strict=True):
        # Same-padded networks divide exactly; valid-padded ones (Inception) lose a few border pixels.
        assert abs(feature_map.shape[-1] - side / reduction) <= 0.15 * side / reduction + 1.5, (name, reduction)
    assert not any(key.startswith("head.") for key in features_model.state_dict()), "the head is gone"


def test_wrong_input_raises_clear_errors(built):
    name, model = built
    side = input_side(model)
    with pytest.raises(ValueError, match=r"expects 3 input channels.*got 1"):
        model(torch.randn(1, 1, side, side))
    with pytest.raises(ValueError, match=r"4-D batch.*got a 3-D tensor"):
        model(torch.randn(3, side, side))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 3, side, side, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0]])
