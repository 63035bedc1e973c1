"""Every registered model composes and instantiates with every data config of its task (as lightning-hydra-template's
tests/test_configs.py does), on tiny files in the real formats the tests write, and a recipe for the built-in data
never leaks onto real data or another optimizer."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from PIL import Image
from train_helpers import CONFIGS

import zoo
from zoo.training import _build, build_model

DATA_OF_TASK = {
    "classification": ["synthetic", "imagefolder", "cifar10"],
    "detection": ["synthetic_detection", "coco"],
    "segmentation": ["synthetic_segmentation", "voc"],
}
BUILT_IN = {"synthetic", "synthetic_detection", "synthetic_segmentation"}
SMALL = ["data.train_size=4", "data.val_size=2"]


def _load_test_module(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem, Path(__file__).parent / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data_overrides(tmp_path_factory) -> dict[str, list[str]]:
    """Overrides pointing each data config at tiny files in its real format."""
    root = tmp_path_factory.mktemp("formats")
    _load_test_module("data/test_imagefolder.py").write_tree(root / "imagefolder")
    _load_test_module("data/test_cifar10.py").write_cifar(root / "cifar")
    (root / "coco").mkdir()
    coco = _write_coco(root / "coco")
    voc = root / "voc"
    voc.mkdir()
    _load_test_module("data/test_segmentation_data.py")._write_voc(voc, {"a": [[0, 1], [2, 0]], "b": [[1, 1], [0, 0]]})
    return {
        **{name: SMALL for name in BUILT_IN},
        "imagefolder": [f"data.root={root / 'imagefolder'}", "data.num_workers=0"],
        "cifar10": [f"data.root={root / 'cifar'}", "data.num_workers=0"],
        "coco": [
            f"data.train_annotations={coco}",
            f"data.train_images={root / 'coco'}",
            f"data.val_annotations={coco}",
            f"data.val_images={root / 'coco'}",
            "data.num_workers=0",
        ],  # fmt: skip
        "voc": [f"data.root={voc}", "data.num_workers=0", "data.num_classes=3"],
    }


def _write_coco(root: Path) -> Path:
    Image.fromarray(np.full((40, 60, 3), 90, dtype=np.uint8)).save(root / "1.png")
    data = {
        "images": [{"id": 1, "file_name": "1.png", "height": 40, "width": 60}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 10], "iscrowd": 0}],
        "categories": [{"id": 3, "name": "c3"}],
    }
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    return path


def _compose(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def _group_file(group: str, name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONFIGS / group / f"{name}.yaml"))


def test_every_data_config_belongs_to_a_task():
    names = sorted(p.stem for p in (CONFIGS / "data").glob("*.yaml"))
    assert names == sorted(sum(DATA_OF_TASK.values(), [])), "add a new data config to DATA_OF_TASK"


PAIRS = [(m, d) for m in zoo.list_models() for d in DATA_OF_TASK[zoo.registry.model_task(m)]]


@pytest.mark.parametrize("name, data", PAIRS)
def test_model_composes_and_instantiates_with_data(name, data, data_overrides, tmp_path):
    cfg = _compose(f"paths.output_dir={tmp_path}", f"model={name}", f"data={data}", *data_overrides[data])
    assert cfg.task._target_.endswith(
        {"classification": "ClassificationTask", "detection": "DetectionTask", "segmentation": "SegmentationTask"}[
            zoo.registry.model_task(name)
        ]
    )
    datamodule = _build(cfg.data)
    datamodule.setup("fit")
    kwargs = {"num_classes": datamodule.num_classes}
    if zoo.registry.model_task(name) == "classification":
        kwargs["in_chans"] = datamodule.in_chans
    with torch.device("meta"):  # the builder's arguments are what is checked, not the weights
        model = build_model(cfg.model, **kwargs)
    assert model.spec.name == name
    if data not in BUILT_IN:
        # Nothing of a built-in-data recipe: the data's, the trainer's and the optimizer's own defaults.
        assert set(cfg.data) == set(_group_file("data", data)), "no keys from another dataset's recipe"
        assert cfg.trainer.max_epochs == _group_file("trainer", "default")["max_epochs"]
        assert cfg.trainer.get("max_time") == _group_file("trainer", "default").get("max_time")
        assert cfg.optimizer.lr == _group_file("optimizer", "adamw")["lr"]


@pytest.mark.parametrize("name", ["unet", "faster_rcnn_resnet18_fpn"])
def test_recipe_applies_on_the_built_in_data_only(name, data_overrides, tmp_path):
    task = zoo.registry.model_task(name)
    built_in, real = DATA_OF_TASK[task]
    recipe = OmegaConf.load(CONFIGS / "experiment" / "recipe" / f"{name}_{built_in}.yaml")
    on_built_in = _compose(f"paths.output_dir={tmp_path}", f"model={name}")
    assert on_built_in.data._target_ == _group_file("data", built_in)["_target_"]
    assert on_built_in.trainer.max_epochs == recipe.trainer.max_epochs
    assert on_built_in.data.train_size == recipe.data.train_size
    on_real = _compose(f"paths.output_dir={tmp_path}", f"model={name}", f"data={real}", "optimizer=sgd")
    assert on_real.optimizer.lr == _group_file("optimizer", "sgd")["lr"], "the user's optimizer at its own rate"
    assert "input_size" not in on_real.model and "train_size" not in on_real.data
