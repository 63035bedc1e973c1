"""load_reference_weights is strict: every mismatch is named."""

import pytest
import torch
import torchvision

import zoo


@pytest.fixture(scope="module")
def resnet18_state():
    return torchvision.models.resnet18(weights=None).state_dict()


def test_unknown_reference_key_is_named(resnet18_state):
    state = dict(resnet18_state)
    state["layer9.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"'layer9.0.conv1.weight'.*no counterpart"):
        zoo.load_reference_weights(zoo.create_model("resnet18"), state)


def test_missing_key_is_named(resnet18_state):
    state = dict(resnet18_state)
    del state["layer2.1.bn2.running_var"]
    with pytest.raises(ValueError, match=r"layer2.1.conv2.bn.running_var"):
        zoo.load_reference_weights(zoo.create_model("resnet18"), state)


def test_shape_mismatch_is_named(resnet18_state):
    with pytest.raises(ValueError, match=r"shape mismatch for reference key 'fc.weight'.*\(1000, 512\).*\(10, 512\)"):
        zoo.load_reference_weights(zoo.create_model("resnet18", num_classes=10), resnet18_state)


def test_other_architecture_is_refused(resnet18_state):
    with pytest.raises(ValueError, match="same architecture"):
        zoo.load_reference_weights(zoo.create_model("resnet34"), resnet18_state)


def test_not_a_mapping_is_a_type_error():
    with pytest.raises(TypeError, match="mapping"):
        zoo.load_reference_weights(zoo.create_model("resnet18"), [1, 2])


def test_ddp_prefix_is_accepted(resnet18_state):
    state = {f"module.{k}": v for k, v in resnet18_state.items()}
    model = zoo.load_reference_weights(zoo.create_model("resnet18"), state)
    torch.testing.assert_close(model.conv1.conv.weight, resnet18_state["conv1.weight"])
