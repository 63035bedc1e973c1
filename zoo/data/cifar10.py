"""CIFAR-10 (Krizhevsky, 2009) from the python-pickle batches of the official archive.

The archive ``cifar-10-python.tar.gz`` unpacks to ``cifar-10-batches-py/`` holding
``data_batch_1`` .. ``data_batch_5`` (train, 50 000 images), ``test_batch`` (val, 10 000) and
``batches.meta``. Each batch is a pickled dict with byte keys: ``b"data"``, a uint8 array
(N, 3072) whose row is the red, green and blue 32×32 planes in row-major order, and
``b"labels"``, N ints in 0..9; ``batches.meta`` has ``b"label_names"``. Nothing is downloaded:
``root`` is that folder or its parent.

A pickle can name any importable function for the loader to call, so a planted file could run code
the moment it is read. The batches are read with an unpickler that resolves only the globals the
format holds — numpy's array and scalar reconstruction and ``_codecs.encode`` (how Python 3 writes
bytes at protocol 2) — and refuses the file, naming it and the global, before calling anything else.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.data.base import ClassificationDataModule
from zoo.data.transforms import build_transforms, resolve_augment

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "CIFAR10DataModule", "CIFAR10Dataset"]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
ARCHIVE_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
VAL_FILE = "test_batch"
META_FILE = "batches.meta"
# The standard CIFAR recipe: 4-pixel padded random crop and horizontal flip.
DEFAULT_AUGMENT = {
    "random_resized_crop": False,
    "random_crop_padding": 4,
    "hflip": True,
    "resize_eval": False,
}
NUM_CLASSES = 10
SIDE = 32
# What the pickles of the official archive (Python 2, protocol 2) and of a re-save by numpy 1 or 2
# (protocols 2 to 5) refer to; none of these can run code of the file's choosing.
PICKLE_GLOBALS = frozenset(
    [
        *((f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("_reconstruct", "scalar")),
        *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    ]
)


def _find_folder(root: Path) -> Path:
    """``root/cifar-10-batches-py`` if that exists, else ``root``; it must hold every file."""
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10: data.root {str(root)!r} is not a directory")
    folder = root / ARCHIVE_FOLDER if (root / ARCHIVE_FOLDER).is_dir() else root
    expected = (*TRAIN_FILES, VAL_FILE, META_FILE)
    missing = [name for name in expected if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            "CIFAR-10: expected the python-pickle batches data_batch_1..data_batch_5, "
            f"{VAL_FILE} and {META_FILE} under {folder} (the '{ARCHIVE_FOLDER}' folder of the "
            f"official archive, or its parent); missing: {', '.join(missing)}"
        )
    return folder


class _ForbiddenGlobal(pickle.UnpicklingError):
    pass


class _BatchUnpickler(pickle.Unpickler):
    """Resolves only `PICKLE_GLOBALS`; any other global raises before the pickle can call it."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in PICKLE_GLOBALS:
            raise _ForbiddenGlobal(f"{module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, object]:
    """The dict pickled in ``path``, with its byte keys decoded to str."""
    try:
        with path.open("rb") as file:
            content = _BatchUnpickler(file, encoding="bytes").load()
    except _ForbiddenGlobal as err:
        raise ValueError(
            f"CIFAR-10: {path} refers to the Python global {err}, which the CIFAR-10 format never holds "
            "(only numpy arrays, lists, bytes and ints); refusing to unpickle it, since a pickle can run code"
        ) from None
    except Exception as err:  # a damaged pickle can raise almost any exception
        raise ValueError(f"CIFAR-10: {path} is not a readable pickle ({type(err).__name__}: {err})") from err
    if not isinstance(content, Mapping):
        raise ValueError(f"CIFAR-10: {path} should hold a dict, got {type(content).__name__}")
    return {key.decode("latin-1") if isinstance(key, bytes) else key: value for key, value in content.items()}


def _require_keys(path: Path, content: Mapping[str, object], keys: Sequence[str]) -> None:
    missing = [key for key in keys if key not in content]
    if missing:
        raise ValueError(f"CIFAR-10: {path} lacks the keys {missing}; it has {sorted(map(str, content))}")


def _read_label_names(path: Path) -> list[str]:
    meta = _unpickle(path)
    _require_keys(path, meta, ["label_names"])
    names = [name.decode() if isinstance(name, bytes) else str(name) for name in meta["label_names"]]
    if len(names) != NUM_CLASSES:
        raise ValueError(f"CIFAR-10: {path} should list {NUM_CLASSES} label_names, got {len(names)}")
    return names


def _describe(array: object) -> str:
    if isinstance(array, np.ndarray):
        return f"{array.dtype} array of shape {array.shape}"
    return type(array).__name__


def _load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch as uint8 images (N, 32, 32, 3) and int64 labels (N,)."""
    batch = _unpickle(path)
    _require_keys(path, batch, ["data", "labels"])
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape[1:] != (3 * SIDE * SIDE,):
        raise ValueError(f"CIFAR-10: {path}: 'data' should be a uint8 array (N, 3072), got {_describe(data)}")
    labels = np.asarray(batch["labels"])
    if labels.shape != (len(data),):
        raise ValueError(f"CIFAR-10: {path} has {len(data)} images but labels of shape {labels.shape}")
    if len(labels) and (labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"CIFAR-10: {path}: labels should be ints in 0..{NUM_CLASSES - 1}, got {labels!r}")
    images = data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return images, labels.astype(np.int64)


def _load_batches(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*(_load_batch(path) for path in paths), strict=True)
    # concatenate copies the (N, C, H, W) → (N, H, W, C) views into one contiguous array.
    return np.concatenate(images), np.concatenate(labels)


class CIFAR10Dataset(Dataset):
    """uint8 ``images`` (N, 32, 32, 3), ``labels`` (N,); items: ``(transform(image), label)``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), int(self.labels[index])


class CIFAR10DataModule(ClassificationDataModule):
    """CIFAR-10 from local files: train on the five data batches, validate on ``test_batch``.

    ``augment`` overrides `build_transforms` keyword arguments; by default the train pipeline is
    a 4-pixel padded random crop and a horizontal flip, and eval only normalises.
    """

    num_classes = NUM_CLASSES
    in_chans = 3
    image_size = SIDE

    def __init__(
        self,
        root: str | os.PathLike,
        batch_size: int = 128,
        num_workers: int = 2,
        seed: int = 0,
        augment: Mapping[str, object] | None = None,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.folder = _find_folder(Path(root).expanduser())
        self.classes = _read_label_names(self.folder / META_FILE)
        options = resolve_augment(DEFAULT_AUGMENT, augment)
        self.train_transform = build_transforms(True, SIDE, mean, std, self.in_chans, **options)
        self.val_transform = build_transforms(False, SIDE, mean, std, self.in_chans, **options)

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        train = _load_batches([self.folder / name for name in TRAIN_FILES])
        val = _load_batches([self.folder / VAL_FILE])
        return CIFAR10Dataset(*train, self.train_transform), CIFAR10Dataset(*val, self.val_transform)
