"""Bad input to train(cfg), as a user would hit it (issue 15): each case gives a clear error naming what was
expected and what came, before training where it can, or a correct result."""

import errno
import importlib.util
import os
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from train_helpers import CONFIGS, TINY_RUN, compose_train

import zoo
from zoo.checkpoint import CheckpointWriteError, atomic_save
from zoo.training import check_config, train

ONE_EPOCH = [*TINY_RUN, "trainer.max_epochs=1"]


class TrainingStarted(pl.Callback):
    """Records whether a training batch ran (the checks below must refuse before one does)."""

    started = False

    def on_train_batch_start(self, *args) -> None:
        self.started = True


def _refused_before_training(cfg, match: str, error: type[Exception] = ValueError) -> None:
    observer = TrainingStarted()
    with pytest.raises(error, match=match):
        train(cfg, extra_callbacks=[observer])
    assert not observer.started


# Resuming with other optimizer settings


@pytest.fixture(scope="module")
def adamw_run(tmp_path_factory) -> Path:
    """A finished one-epoch AdamW run (4 steps, constant rate 2e-3)."""
    run = tmp_path_factory.mktemp("adamw_run")
    train(compose_train(run, *ONE_EPOCH, "scheduler=constant"))
    return run


def test_resume_with_another_optimizer_is_refused_naming_both(adamw_run, tmp_path):
    cfg = compose_train(tmp_path, *ONE_EPOCH, "trainer.max_epochs=2", "optimizer=sgd", f"ckpt_path={adamw_run}")
    _refused_before_training(
        cfg, r"trained with torch\.optim\.adamw\.AdamW, but the config builds torch\.optim\.sgd\.SGD"
    )


def test_resume_of_an_older_checkpoint_with_another_optimizer_is_refused(adamw_run, tmp_path):
    """A checkpoint from before optimizer_classes was stored is judged by the settings SGD needs."""
    checkpoint = torch.load(adamw_run / "checkpoints" / "last.ckpt", weights_only=True)
    del checkpoint["optimizer_classes"]
    atomic_save(checkpoint, tmp_path / "old.ckpt")
    cfg = compose_train(tmp_path / "run", *ONE_EPOCH, "optimizer=sgd", f"ckpt_path={tmp_path / 'old.ckpt'}")
    _refused_before_training(
        cfg, r"an optimizer without SGD's .*momentum.*but the config builds torch\.optim\.sgd\.SGD"
    )


def test_resume_with_a_new_learning_rate_trains_with_it_and_says_so(adamw_run, tmp_path, capsys):
    overrides = [*ONE_EPOCH, "trainer.max_epochs=2", "scheduler=constant", f"ckpt_path={adamw_run}"]
    train(compose_train(tmp_path, *overrides, "optimizer.lr=5e-4", "optimizer.weight_decay=0.1"))
    out = capsys.readouterr().out
    assert "resuming with the config's optimizer settings instead of the checkpoint's: " in out
    assert "lr 0.002 -> 0.0005" in out and "weight_decay 0.05 -> 0.1" in out
    resumed = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 8
    decay, no_decay = resumed["optimizer_states"][0]["param_groups"]
    assert decay["lr"] == no_decay["lr"] == decay["initial_lr"] == 5e-4
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)
    assert resumed["lr_schedulers"][0]["base_lrs"] == [5e-4, 5e-4]


# Checkpoint writes that fail


def test_full_disk_during_a_checkpoint_write_is_one_line_naming_the_file(tmp_path, monkeypatch):
    def full_disk(obj, handle):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    last = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointWriteError) as caught:
        train(compose_train(tmp_path, *ONE_EPOCH, "callbacks.last_checkpoint.every_n_steps=2"))
    assert str(caught.value) == f"could not write checkpoint {str(last)!r}: No space left on device"
    assert caught.value.errno == errno.ENOSPC and caught.value.__suppress_context__
    assert not list(last.parent.iterdir()), "nothing half-written is left behind"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_run_directory_is_refused_before_training(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o500)
    try:
        _refused_before_training(
            compose_train(run, *ONE_EPOCH), r"could not write into the run directory .*: Permission denied", OSError
        )
    finally:
        run.chmod(0o700)


def test_unwritable_checkpoint_folder_is_refused_before_training(tmp_path, monkeypatch):
    """What a read-only folder gives, for root too (which ignores permissions): the probe file is refused."""
    import tempfile

    real = tempfile.TemporaryFile

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).name == "checkpoints":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    folder = re.escape(str(tmp_path / "checkpoints"))
    _refused_before_training(
        compose_train(tmp_path, *ONE_EPOCH),
        rf"could not write into the checkpoint folder '{folder}': Permission denied: choose a writable run directory",
        CheckpointWriteError,
    )


# The run summary


def test_summary_prints_the_image_size_of_cifar10(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("cifar_files", Path(__file__).parent / "data" / "test_cifar10.py")
    cifar_files = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cifar_files)
    cifar_files.write_cifar(tmp_path / "cifar-10-batches-py")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[
            f"paths.output_dir={tmp_path / 'run'}", "data=cifar10", f"data.root={tmp_path}", "data.num_workers=0",
            "data.batch_size=4", "trainer.fast_dev_run=true",
        ])  # fmt: skip
    metrics = train(cfg)
    assert metrics["image_size"] == 32
    assert "M per 32px image" in capsys.readouterr().out


# The composed config, checked before anything is built


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.lr=abc", "optimizer.lr must be a number > 0, got 'abc'"),
        ("optimizer.lr=0", "optimizer.lr must be > 0, got 0"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay must be >= 0, got -1"),
        ("seed=abc", r"seed must be an int \(or null: a random seed\), got 'abc'"),
        ("seed=1.5", r"seed must be an int \(or null: a random seed\), got 1.5"),
        ("trainer.max_epochs=0", r"trainer.max_epochs must be a positive int or -1 \(train until stopped\), got 0"),
        ("trainer.max_epochs=abc", "trainer.max_epochs must be a positive int or -1 .*, got 'abc'"),
        ("trainer.max_steps=-5", r"trainer.max_steps must be a positive int or -1 \(no limit\), got -5"),
    ],
)
def test_config_values_of_the_wrong_type_or_range_name_the_key_and_the_value(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        check_config(compose_train(tmp_path, override))


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["task.monitor=val/accuracy"], "task.monitor"),
        (["callbacks.early_stopping.enabled=true", "callbacks.early_stopping.monitor=val/accuracy"],
         "callbacks.early_stopping.monitor"),
    ],
)  # fmt: skip
def test_a_monitor_typo_is_refused_listing_the_metrics_the_task_logs(tmp_path, overrides, key):
    message = rf"{key}='val/accuracy' is not a metric ClassificationTask logs; choose one of val/acc, val/loss, "
    with pytest.raises(ValueError, match=message + "train/acc, train/loss"):
        train(compose_train(tmp_path, *overrides))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["data=synthetic_segmentation"],
            r"model resnet18 is a classifier \(task classification\); data .*SyntheticSegmentationDataModule is for "
            r"segmentation: pick a segmentation model \(zoo.list_models\(task='segmentation'\): deeplabv3.*\) or "
            r"classification data",
        ),
        (
            ["model=unet", "data=synthetic"],
            r"model unet is a segmentation model \(task segmentation\); data .*SyntheticDataModule is for "
            r"classification: pick a classification model",
        ),
        (
            ["model=yolov3", "data=synthetic_segmentation"],
            r"model yolov3 is a detector \(task detection\); data .* is for segmentation",
        ),
        (["task=segmentation"], r"model resnet18 is a classifier .*; task .*SegmentationTask trains segmentation"),
    ],
)
def test_a_model_of_another_task_than_the_data_is_refused(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        train(compose_train(tmp_path, *overrides))


# Run lengths and switches that used to fail inside Lightning or torch


class StopAfter(pl.Callback):
    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.steps:
            trainer.should_stop = True


def test_max_epochs_minus_one_trains_until_stopped_with_a_schedule_that_needs_no_length(tmp_path):
    metrics = train(
        compose_train(
            tmp_path, *TINY_RUN, "trainer.max_epochs=-1", "scheduler=step", "scheduler.step_epochs=1",
            "scheduler.gamma=0.5",
        ),
        extra_callbacks=[StopAfter(6)],
    )  # fmt: skip
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 6 and "val/acc" in metrics
    # Epochs of 4 steps: the rate halves once after the first 4 steps (epochs converted with the real length).
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(2e-3 * 0.5)


def test_max_epochs_minus_one_with_the_cosine_schedule_asks_for_a_length(tmp_path):
    _refused_before_training(
        compose_train(tmp_path, *TINY_RUN, "trainer.max_epochs=-1"),
        r"the cosine schedule decays over the run's length.*scheduler=constant or scheduler=step, or set "
        r"trainer.max_steps",
    )


def test_no_logger_with_the_default_callbacks_trains(tmp_path):
    cfg = compose_train(tmp_path, *[o for o in ONE_EPOCH if o != "~logger.tensorboard"], "logger=none")
    assert "lr_monitor" in cfg.callbacks
    metrics = train(cfg)
    assert "val/acc" in metrics and not (tmp_path / "csv").exists()


def test_a_last_batch_of_one_image_through_batch_norm_is_refused_before_training(tmp_path):
    """65 images in batches of 16 leave 1; ResNet-18's last stage is 1×1 at 32 px."""
    _refused_before_training(
        compose_train(tmp_path, *ONE_EPOCH, "data.train_size=65"),
        r"the last training batch of each epoch holds 1 image \(65 images per process, data.batch_size=16, "
        r"65 % 16 == 1\), but resnet18's batch norm layer4\..* would get a single value per channel there "
        r"\(input \(1, 512, 1, 1\)\)",
    )


def test_a_last_batch_of_one_image_that_batch_norm_accepts_trains(tmp_path):
    """At 64 px ResNet-18's smallest map is 2×2, so torch normalises one image: the run is not refused."""
    small = [*ONE_EPOCH, "data.image_size=64", "data.val_size=16", "data.train_size=17"]
    metrics = train(compose_train(tmp_path, *small))
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))


def test_the_batch_of_one_probe_leaves_the_model_and_the_random_state_as_they_were():
    from zoo.data.synthetic import SyntheticDataModule
    from zoo.tasks.classification import ClassificationTask
    from zoo.training import _single_value_batch_norm

    data = SyntheticDataModule(train_size=4, val_size=2, image_size=32, batch_size=2)
    data.setup()
    model = zoo.create_model("resnet18", num_classes=10).eval()
    task = ClassificationTask(model, optimizer=torch.optim.SGD, num_classes=10)
    before, rng = {k: v.clone() for k, v in model.state_dict().items()}, torch.get_rng_state()
    name, shape = _single_value_batch_norm(task, data)
    assert name.startswith("layer4.") and tuple(shape) == (1, 512, 1, 1)
    assert not model.training and torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
