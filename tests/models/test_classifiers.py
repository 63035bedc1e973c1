"""The model API, checked for every registered classifier (a new model is tested on registration)."""

import pytest
import torch

import zoo

MODELS = zoo.list_models()
SIZE = 64  # small input: every ResNet stage still has ≥ 2×2 positions


@pytest.fixture(scope="module", params=MODELS)
def built(request):
    return request.param, zoo.create_model(request.param, num_classes=5)


def test_forward_backward_shapes_and_finite(built):
    name, model = built
    model.train()
    x = torch.randn(2, 3, SIZE, SIZE, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads), f"{name}: missing or bad gradient"
    model.zero_grad(set_to_none=True)


def test_api_attributes(built):
    name, model = built
    model.eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        logits = model.forward_head(features)
    assert model.num_classes == 5 and model.in_chans == 3
    assert features.shape[1] == model.num_features == model.feature_info[-1]["num_chs"]
    assert pooled.shape == (1, model.num_features)
    assert torch.equal(logits, model(x))


def test_features_only_channels_and_strides_match_feature_info(built):
    name, model = built
    features_model = zoo.create_model(name, features_only=True)
    info = features_model.feature_info
    assert info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        maps = features_model.eval()(torch.randn(1, 3, SIZE, SIZE))
    assert [m.shape[1] for m in maps] == info.channels() == model.feature_info.channels()
    assert [SIZE // m.shape[-1] for m in maps] == info.reduction()
    # The head is gone: the feature network holds only what it uses.
    assert not any(k.startswith("fc.") for k in features_model.state_dict())


def test_wrong_input_raises_clear_errors(built):
    name, model = built
    with pytest.raises(ValueError, match=r"expects 3 input channels.*got 1"):
        model(torch.randn(1, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"4-D batch.*got a 3-D tensor"):
        model(torch.randn(3, SIZE, SIZE))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(1, 3, SIZE, SIZE, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0]])
