"""Atomic checkpoint writes and safe, clear loads."""

import errno
import os

import pytest
import torch

from zoo.checkpoint import CheckpointWriteError, atomic_save, check_writable, load_checkpoint


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


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_full_disk_is_one_line_naming_the_checkpoint_and_keeps_the_previous_file(tmp_path, monkeypatch):
    """torch's serializer writing into a full disk (/dev/full gives ENOSPC on every write)."""
    path = tmp_path / "last.ckpt"
    atomic_save({"epoch": 1}, path)
    real_save = torch.save

    def save_to_a_full_disk(obj, handle):
        with open("/dev/full", "wb") as full:
            real_save(obj, full)

    monkeypatch.setattr(torch, "save", save_to_a_full_disk)
    with pytest.raises(CheckpointWriteError) as caught:
        atomic_save({"epoch": 2, "w": torch.zeros(100_000)}, path)
    assert str(caught.value) == f"could not write checkpoint {str(path)!r}: No space left on device"
    assert caught.value.errno == errno.ENOSPC and caught.value.__cause__ is None and caught.value.__suppress_context__
    assert load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_folder_that_cannot_be_created_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CheckpointWriteError, match=r"could not write checkpoint '.*/file/last.ckpt': "):
        atomic_save({"epoch": 1}, blocker / "last.ckpt")
    with pytest.raises(CheckpointWriteError, match=r"could not write into the run directory '.*/file/x': .*: hint"):
        check_writable(blocker / "x", "into the run directory", ": hint")
    check_writable(tmp_path / "new")
    assert os.listdir(tmp_path / "new") == []
