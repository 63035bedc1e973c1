"""train(cfg) end to end on composed configs, and the train.py command line."""

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from train_helpers import CONFIGS, SMALL_DATA, compose_train, run_cli, slow_if_large

import zoo
from zoo.training import train


def test_every_registered_model_has_a_config():
    names = sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml"))
    assert names == zoo.list_models(), "each registered model needs configs/model/<name>.yaml and vice versa"


@pytest.mark.parametrize("name", slow_if_large(zoo.list_models(task="classification")))
def test_every_model_trains_through_train(tmp_path, name):
    """`python train.py model=<name>` composes, builds and takes a training and a validation step."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"paths.output_dir={tmp_path}", f"model={name}", "debug=fast",
                "data.train_size=2", "data.val_size=2", "data.batch_size=2",
            ],
        )  # fmt: skip
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss"])) and 0.0 <= metrics["val/acc"] <= 1.0


# Models whose default input transform would resize the tiny test images to 800 px.
SMALL_INPUT_OVERRIDES = {
    name: ["++model.min_size=64", "++model.max_size=64"]
    for name in ("faster_rcnn_resnet50_fpn", "mask_rcnn_resnet50_fpn", "retinanet_resnet50_fpn", "fcos_resnet50_fpn")
}
MONITOR = {"detection": "val/map_50", "segmentation": "val/miou"}


@pytest.mark.parametrize(
    "name", slow_if_large(zoo.list_models(task="detection") + zoo.list_models(task="segmentation"))
)
def test_every_detector_and_segmenter_trains_through_train(tmp_path, name):
    """`python train.py model=<name>` picks its task and data on its own, trains a step and validates."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"paths.output_dir={tmp_path}", f"model={name}", "debug=fast", "++model.input_size=64",
                "data.train_size=2", "data.val_size=2", "data.batch_size=2", *SMALL_INPUT_OVERRIDES.get(name, []),
            ],
        )  # fmt: skip
    task = zoo.registry.model_task(name)
    assert cfg.task._target_.endswith({"detection": "DetectionTask", "segmentation": "SegmentationTask"}[task])
    metrics = train(cfg)
    assert metrics["monitor"] == MONITOR[task]
    assert torch.isfinite(torch.tensor(metrics["train/loss"])) and 0.0 <= metrics[MONITOR[task]] <= 1.0


def test_fast_dev_run_returns_metrics(tmp_path):
    metrics = train(compose_train(tmp_path, "trainer.fast_dev_run=true"))
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").iterdir())
    assert 0.0 <= metrics["val/acc"] <= 1.0
    assert metrics["params"] == sum(p.numel() for p in zoo.create_model("resnet18", num_classes=10).parameters())
    assert metrics["macs"] > 0


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=seresnet18", "optimizer=adamw", "scheduler=step"],
        ["scheduler=constant", "task.label_smoothing=0.1", "task.mixup_alpha=0.2", "task.cutmix_alpha=1.0"],
        ["experiment=synthetic_recipe"],
        ["model=googlenet"],  # two auxiliary classifiers: their losses join the training loss
        ["model=inception_v3", "data.train_size=2", "data.val_size=2", "data.batch_size=2"],  # 299 px from its config
    ],
)
def test_recipe_switches_run(tmp_path, overrides):
    metrics = train(compose_train(tmp_path, "trainer.fast_dev_run=true", *overrides))
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))


def test_short_run_writes_checkpoints_and_csv_logs(tmp_path):
    metrics = train(compose_train(tmp_path, "debug=limit", "seed=3"))
    checkpoints = tmp_path / "checkpoints"
    assert (checkpoints / "last.ckpt").is_file() and (checkpoints / "best.ckpt").is_file()
    assert not list(checkpoints.glob("*.tmp")), "atomic save left a temporary file behind"
    ckpt = torch.load(checkpoints / "best.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1 or ckpt["epoch"] == 0
    log = (tmp_path / "csv" / "metrics.csv").read_text()
    assert "val/acc" in log and "train/loss_epoch" in log
    assert metrics["best_val_acc"] == pytest.approx(
        max(float(ckpt["callbacks"][k]["best_model_score"]) for k in ckpt["callbacks"] if "ModelCheckpoint" in k)
    )


def test_too_small_data_for_the_model_is_a_clear_error(tmp_path):
    from zoo.training import _check_input_size

    class Tiny:
        min_input_size = (75, 75)

    class Data:
        image_size = 32

    with pytest.raises(ValueError, match=r"needs inputs of at least 75×75 pixels, but the data gives 32×32"):
        _check_input_size(Tiny(), Data(), "inception_v3")


def test_model_config_input_size_sets_the_synthetic_image_size(tmp_path):
    cfg = compose_train(tmp_path, "+model.input_size=48")
    assert cfg.data.image_size == 48


def test_unknown_model_name_lists_available(tmp_path):
    with pytest.raises(ValueError, match="Available models: .*resnet18"):
        train(compose_train(tmp_path, "trainer.fast_dev_run=true", "model.name=resnet19"))


def test_cli_fast_dev_run_prints_summary(tmp_path):
    result = run_cli("trainer.fast_dev_run=true", *SMALL_DATA, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "model          resnet18" in result.stdout and "best val/acc" in result.stdout


@pytest.mark.slow  # a whole train.py process (30 s); the check itself is tested in-process in test_train_bad_input.py
def test_cli_unwritable_run_directory_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    run_dir = tmp_path / "file" / "run"
    result = run_cli(f"paths.output_dir={run_dir}", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"error: could not write into the run directory '{run_dir}': "), last_line
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # two train.py processes in a sweep
def test_cli_multirun_over_models(tmp_path):
    result = run_cli(
        "-m", "model=resnet18,seresnet18", "trainer.fast_dev_run=true", *SMALL_DATA,
        f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "model          resnet18" in result.stdout and "model          seresnet18" in result.stdout
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0_resnet18", "1_seresnet18"]


@pytest.mark.slow  # a train.py process
def test_cli_wrong_model_group_lists_options(tmp_path):
    result = run_cli("model=resnet19", cwd=tmp_path)
    assert result.returncode != 0
    assert "resnet18" in result.stderr and "resnet19" in result.stderr


def test_resume_from_last_checkpoint_loads_with_weights_only(tmp_path):
    train(compose_train(tmp_path, "debug=limit"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    first_step = torch.load(last, weights_only=True)["global_step"]
    metrics = train(compose_train(tmp_path, "debug=limit", "trainer.max_epochs=3", f"ckpt_path={last}"))
    assert torch.load(last, weights_only=True)["global_step"] == first_step + 4  # one more epoch of 4 batches
    assert "val/acc" in metrics


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not load checkpoint"):
        train(compose_train(tmp_path, "debug=limit", f"ckpt_path={bad}"))
