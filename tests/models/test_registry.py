import pytest
from torch import nn

import zoo
from zoo.registry import register_model

RESNET_FAMILY = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
    "seresnet18", "seresnet34", "seresnet50", "seresnet101", "seresnet152",
    "seresnext50_32x4d", "seresnext101_32x4d",
]  # fmt: skip


def test_issue_models_are_registered():
    assert set(RESNET_FAMILY) <= set(zoo.list_models())


def test_list_models_wildcards():
    assert zoo.list_models("resnet1*") == ["resnet101", "resnet152", "resnet18"]
    assert zoo.list_models("seresnext*") == ["seresnext101_32x4d", "seresnext50_32x4d"]
    assert zoo.list_models("no_such_family*") == []
    assert zoo.list_models(["wide_*", "resnet18"]) == ["resnet18", "wide_resnet101_2", "wide_resnet50_2"]


def test_unknown_name_lists_closest_matches():
    with pytest.raises(ValueError, match=r"unknown model 'resnet19'.*Closest matches: .*resnet18"):
        zoo.create_model("resnet19")


def test_non_string_name_is_a_type_error():
    with pytest.raises(TypeError, match="model name must be a str"):
        zoo.create_model(18)


def test_pretrained_is_refused_with_a_pointer_to_load_reference_weights():
    with pytest.raises(ValueError, match="load_reference_weights"):
        zoo.create_model("resnet18", pretrained=True)


def test_out_indices_without_features_only_is_an_error():
    with pytest.raises(ValueError, match="features_only"):
        zoo.create_model("resnet18", out_indices=(1, 2))


def test_registering_a_name_twice_is_an_error():
    def resnet18():
        return nn.Identity()

    with pytest.raises(ValueError, match="already registered"):
        register_model(resnet18)


def test_builder_kwargs_are_passed():
    model = zoo.create_model("resnet18", num_classes=7, in_chans=1)
    assert model.get_classifier().out_features == 7
    assert model.conv1.conv.in_channels == 1


def test_tasks_partition_the_registry():
    by_task = {task: zoo.list_models(task=task) for task in zoo.registry.TASKS}
    assert "resnet18" in by_task["classification"]
    assert sorted(sum(by_task.values(), [])) == zoo.list_models()
    assert zoo.registry.model_task("resnet18") == "classification"
    with pytest.raises(ValueError, match="task must be one of"):
        zoo.list_models(task="captioning")
    with pytest.raises(ValueError, match="task must be one of"):
        zoo.register_model(task="captioning")
