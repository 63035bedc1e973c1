"""Runs that get killed, diverge or meet bad checkpoints: exact resume after SIGKILL, determinism, NaN stop,
SIGTERM/SIGINT ending with a checkpoint, a resume hint and a failing exit status."""

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException
from train_helpers import TINY_RUN, cli_command, compose_train, run_cli

from zoo.callbacks import LastCheckpoint, NonFiniteLossError
from zoo.checkpoint import atomic_save
from zoo.data.resumable import EpochSampler, ResumableDataLoader
from zoo.training import train

# 3 epochs of 4 steps.
RUN = [*TINY_RUN, "trainer.max_epochs=3", "trainer.deterministic=true"]


def test_epoch_sampler_orders_are_seeded_per_epoch_and_split_across_ranks():
    sampler = EpochSampler(10, shuffle=True, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(10)) and first == list(sampler)  # same epoch, same order
    sampler.set_epoch(1)
    assert list(sampler) != first
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(3)).tolist()
    assert first == expected
    ranks = [list(EpochSampler(10, shuffle=True, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert all(len(part) == 4 for part in ranks)  # padded to 12 by wrapping around, as DistributedSampler
    assert sorted(sum(ranks, [])) == sorted(expected + expected[:2])
    assert [ranks[r % 3][r // 3] for r in range(10)] == expected  # rank r takes positions r, r + 3, ...


def test_epoch_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        EpochSampler(10, shuffle=False, rank=2, world_size=2)
    with pytest.raises(ValueError, match="size"):
        EpochSampler(0, shuffle=False)


def test_loader_state_resumes_after_the_batches_served():
    def loader():
        return ResumableDataLoader(range(20), sampler=EpochSampler(20, shuffle=True, seed=0), batch_size=3)

    full = loader()
    full.sampler.set_epoch(2)
    batches = [b.tolist() for b in full]
    interrupted = loader()
    interrupted.sampler.set_epoch(2)
    iterator = iter(interrupted)
    seen = [next(iterator).tolist() for _ in range(4)]
    state = interrupted.state_dict()
    assert state == {"epoch": 2, "batches_served": 4}
    resumed = loader()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)  # Lightning sets the epoch again before iterating
    rest = [b.tolist() for b in resumed]
    assert seen + rest == batches
    assert resumed.state_dict()["batches_served"] == len(batches)
    with pytest.raises(ValueError, match="batches_served"):
        resumed.load_state_dict({"epoch": 1})


def test_creating_iterators_does_not_touch_the_global_rng():
    loader = ResumableDataLoader(range(8), sampler=EpochSampler(8, shuffle=True), batch_size=4)
    state = torch.get_rng_state()
    list(loader), list(loader)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.slow  # two real processes and a kill: 45 s
def test_run_killed_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    """3 epochs of 4 steps, last.ckpt every 3 steps and at epoch ends; SIGKILL after step 7 (mid-epoch 1), so
    the newest checkpoint is step 6 and steps 7.. are trained again after the resume."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    args = [*RUN, "callbacks.last_checkpoint.every_n_steps=3"]
    whole = run_cli(*args, f"hydra.run.dir={tmp_path}/whole", cwd=tmp_path, env=env)
    assert whole.returncode == 0, whole.stderr[-3000:]

    killed_dir = tmp_path / "killed"
    kill = ["+callbacks.kill._target_=train_helpers.KillAtStep", "+callbacks.kill.step=7"]
    killed = run_cli(*args, *kill, f"hydra.run.dir={killed_dir}", cwd=tmp_path, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    last = killed_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 6
    assert not list(last.parent.glob("*.tmp"))

    resumed = run_cli(*args, f"hydra.run.dir={tmp_path}/resumed", f"ckpt_path={killed_dir}", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)
    got = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert got["global_step"] == expected["global_step"] == 12
    assert expected["state_dict"].keys() == got["state_dict"].keys()
    for key, value in expected["state_dict"].items():
        assert torch.equal(value, got["state_dict"][key]), f"{key} differs from the uninterrupted run"
    moments = [ckpt["optimizer_states"][0]["state"].values() for ckpt in (expected, got)]
    for a, b in zip(*moments, strict=True):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def _loss_curve(run_dir):
    with open(run_dir / "csv" / "metrics.csv") as handle:
        return [float(row["train/loss_step"]) for row in csv.DictReader(handle) if row.get("train/loss_step")]


def test_same_seed_gives_the_same_loss_curve(tmp_path):
    overrides = [*RUN, "trainer.max_epochs=1", "seed=5"]
    train(compose_train(tmp_path / "a", *overrides))
    train(compose_train(tmp_path / "b", *overrides))
    train(compose_train(tmp_path / "c", *overrides[:-1], "seed=6"))
    curve = _loss_curve(tmp_path / "a")
    assert len(curve) == 4
    assert curve == _loss_curve(tmp_path / "b")
    assert curve != _loss_curve(tmp_path / "c")


def test_diverging_run_stops_with_the_step(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"training loss is (nan|inf) at global step \d+"):
        train(compose_train(tmp_path, *RUN, "optimizer.lr=1e30", "scheduler=constant"))


def test_early_stopping_and_gradient_clipping_switches(tmp_path):
    metrics = train(
        compose_train(
            tmp_path,
            *RUN,
            "trainer.max_epochs=20",
            "callbacks.early_stopping.enabled=true",
            "callbacks.early_stopping.patience=1",
            "callbacks.early_stopping.min_delta=10",
            "trainer.gradient_clip_val=1.0",
        )
    )
    epochs = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert epochs < 19, "early stopping with an unreachable min_delta should stop after patience + 1 epochs"
    assert "val/acc" in metrics


def test_foreign_checkpoint_gives_a_clear_error(tmp_path):
    foreign = tmp_path / "foreign.ckpt"
    atomic_save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a zoo training checkpoint"):
        train(compose_train(tmp_path, *RUN, f"ckpt_path={foreign}"))


def test_checkpoint_of_another_model_gives_a_clear_error(tmp_path):
    train(compose_train(tmp_path / "a", *RUN, "trainer.max_epochs=1"))
    with pytest.raises(ValueError, match="does not fit"):
        train(compose_train(tmp_path / "b", *RUN, "model=mobilenet_v2", f"ckpt_path={tmp_path / 'a'}"))


def test_missing_ckpt_path_gives_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="checkpoints/last.ckpt"):
        train(compose_train(tmp_path, f"ckpt_path={tmp_path}"))


@pytest.mark.parametrize(
    "signum",
    # SIGINT takes Lightning's SIGTERM path, so the default run keeps one real process (20 s) for both.
    [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)],
    ids=["SIGTERM", "SIGINT"],
)
def test_signal_stops_the_run_with_last_ckpt_a_resume_hint_and_status_128_plus_signal(tmp_path, signum):
    """What a job scheduler (SIGTERM) or Ctrl+C (SIGINT) does to `python train.py`: the run stops at the next
    batch boundary, writes last.ckpt, prints the ckpt_path= that resumes it and exits with 128 + the signal."""
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    args = [
        *TINY_RUN,
        "trainer.max_epochs=1000",
        "callbacks.last_checkpoint.every_n_steps=1",
        f"hydra.run.dir={run_dir}",
    ]
    process = subprocess.Popen(
        cli_command(*args),
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell starts background jobs with SIGINT ignored, which Python (and train.py) then keeps ignoring.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 300
        while not last.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert last.is_file(), "no checkpoint within 300 s"
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert f"stopped by {signum.name}; resume with    ckpt_path={last.resolve()}" in stderr
    checkpoint = torch.load(last, weights_only=True)
    assert 1 <= checkpoint["global_step"] < 4000 and not list(last.parent.glob("*.tmp"))


def test_last_checkpoint_is_written_when_sigterm_stops_the_run_only():
    """Lightning raises SIGTERMException between batches (a consistent state); any other exception may come
    mid-step, and nothing is written before the first step."""
    saved = []

    class Trainer:
        fast_dev_run = False
        global_step = 5

        def save_checkpoint(self, path, weights_only):
            saved.append((path, weights_only))

    callback = LastCheckpoint("ckpts", every_n_steps=50)
    callback.on_exception(Trainer(), None, RuntimeError("mid-step"))
    assert saved == []
    callback.on_exception(Trainer(), None, SIGTERMException())
    assert saved == [(Path("ckpts") / "last.ckpt", False)]
    Trainer.global_step = 0
    callback.on_exception(Trainer(), None, SIGTERMException())
    assert len(saved) == 1
