"""The model API, checked for every registered classifier (a new model is tested on registration)."""

import pytest
import torch

import zoo

MODELS = zoo.list_models(task="classification")


def input_side(model) -> int:
    """A small input the architecture accepts: 64 px, or its minimum if that is larger."""
    return max(64, *model.min_input_size)


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
    assert pooled.shape == (1, model.num_features)
    assert torch.equal(logits, direct)


def test_features_only_channels_and_strides_match_feature_info(built):
    name, model = built
    features_model = zoo.create_model(name, features_only=True)
    info = features_model.feature_info
    assert info.channels() == model.feature_info.channels()
    assert info.reduction() == sorted(info.reduction()) and info.reduction()[-1] == 32
    # Valid-padded networks (min_input_size > 32) need room for their nominal strides.
    side = 96 if max(model.eval().min_input_size) <= 32 else 160
    with torch.no_grad():
        maps = features_model.eval()(torch.randn(1, 3, side, side))
    assert [m.shape[1] for m in maps] == info.channels()
    for feature_map, reduction in zip(maps, info.reduction(), strict=True):
        # Same-padded networks divide exactly; valid-padded ones (Inception) lose a few border pixels.
        assert abs(feature_map.shape[-1] - side / reduction) <= 0.15 * side / reduction + 1.5, (name, reduction)
    if model.head_modules:  # the head is gone: the feature network holds only what it uses
        assert not any(key.startswith(model.head_modules) for key in features_model.state_dict())


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
