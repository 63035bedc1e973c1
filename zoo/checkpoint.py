"""Checkpoints that survive a kill and load safely.

Writes go to a temporary file in the target folder, are flushed to disk, then renamed over the
target (``os.replace`` is atomic on POSIX), so a kill during a save leaves the old file intact.
A write that fails (a full disk, a read-only folder) raises :class:`CheckpointWriteError`, one line
naming the checkpoint and the cause, instead of the serializer's chained RuntimeError.
Loads use ``torch.load(weights_only=True)``: a checkpoint can hold tensors and plain containers,
never code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

__all__ = ["AtomicCheckpointIO", "CheckpointWriteError", "atomic_save", "check_writable", "load_checkpoint"]


class CheckpointWriteError(OSError):
    """A checkpoint (or another run output) could not be written; ``errno`` and ``filename`` are the cause's."""

    def __init__(self, path: str | os.PathLike, cause: OSError, what: str = "checkpoint", hint: str = "") -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.message = f"could not write {what} {str(path)!r}: {cause.strerror or cause}{hint}"

    def __str__(self) -> str:
        return self.message


def _os_error_behind(error: BaseException) -> OSError | None:
    """The OSError a failed write raised; torch's serializer may chain it to (or under) its own RuntimeError."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` through a temporary file and a rename; :class:`CheckpointWriteError` if the
    folder cannot be written or the disk fills up (the previous file, if any, is left as it was)."""
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as error:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        cause = _os_error_behind(error) if isinstance(error, (OSError, RuntimeError)) else None
        if cause is None:
            raise
        raise CheckpointWriteError(path, cause) from None


def check_writable(directory: str | os.PathLike, what: str = "into the checkpoint folder", hint: str = "") -> None:
    """:class:`CheckpointWriteError` unless a file can be created in ``directory`` (made if missing): a
    read-only run directory is refused before training instead of at the first save."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise CheckpointWriteError(directory, error, what, hint) from None


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a missing, corrupt or foreign file raises ValueError."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or non-torch files
        raise ValueError(
            f"could not load checkpoint {str(path)!r}: not a complete torch checkpoint of tensors and "
            f"plain containers ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        ) from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f"checkpoint {str(path)!r} holds a {type(checkpoint).__name__}, expected a dict")
    return checkpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O with atomic writes and ``weights_only=True`` loads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return load_checkpoint(path, map_location=map_location or "cpu")
