"""Atomic checkpoint writes and safe, clear loads."""

import os

import pytest
import torch

from zoo.checkpoint import atomic_save, load_checkpoint


def test_round_trip(tmp_path):
    state = {"state_dict": {"w": torch.arange(4.0)}, "epoch": 3}
    atomic_save(state, tmp_path / "last.ckpt")
    loaded = load_checkpoint(tmp_path / "last.ckpt")
    assert loaded["epoch"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.arange(4.0))
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_save({"epoch": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("simulated crash during save")

    with pytest.raises(RuntimeError, match="simulated crash"):
        atomic_save({"epoch": 2, "bad": Unpicklable()}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_truncated_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_save({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="could not load checkpoint"):
        load_checkpoint(path)


def test_foreign_objects_are_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"callable": os.getcwd}, path)
    with pytest.raises(ValueError, match="could not load checkpoint"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.ckpt")
