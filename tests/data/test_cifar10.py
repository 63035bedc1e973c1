import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from zoo.data.cifar10 import CIFAR10DataModule
from zoo.data.transforms import AUGMENT_KEYS

CONFIG = Path(__file__).parents[2] / "configs" / "data" / "cifar10.yaml"
LABEL_NAMES = "airplane automobile bird cat deer dog frog horse ship truck".split()
PER_BATCH = 6
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
NO_AUGMENT = {"random_crop_padding": 0, "hflip": False}
NO_NORMALISATION = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def encode(image: np.ndarray) -> np.ndarray:
    """An (32, 32, 3) image as a CIFAR row: the red, green, blue 1024-byte planes, row-major."""
    return np.concatenate([image[:, :, 0].ravel(), image[:, :, 1].ravel(), image[:, :, 2].ravel()])


def dump(path: Path, content: object) -> None:
    with path.open("wb") as file:
        pickle.dump(content, file, protocol=2)


def write_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    dump(
        path,
        {
            b"batch_label": path.name.encode(),
            b"labels": labels,
            b"data": np.stack([encode(image) for image in images]),
            b"filenames": [f"image_{i}.png".encode() for i in range(len(images))],
        },
    )


def write_cifar(folder: Path) -> dict[str, tuple[np.ndarray, list[int]]]:
    """A tiny CIFAR-10 in the official layout; returns {file: (images (N, 32, 32, 3), labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [*TRAIN_FILES, "test_batch"]:
        images = rng.integers(0, 256, (PER_BATCH, 32, 32, 3), dtype=np.uint8)
        labels = [int(label) for label in rng.integers(0, 10, PER_BATCH)]
        write_batch(folder / name, images, labels)
        batches[name] = (images, labels)
    meta = {
        b"num_cases_per_batch": PER_BATCH,
        b"label_names": [name.encode() for name in LABEL_NAMES],
        b"num_vis": 3072,
    }
    dump(folder / "batches.meta", meta)
    return batches


def test_reads_the_official_layout(tmp_path):
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    data = CIFAR10DataModule(str(tmp_path), batch_size=4, num_workers=0)
    assert (data.num_classes, data.in_chans, data.image_size) == (10, 3, 32)
    assert data.classes == LABEL_NAMES
    data.setup()
    assert len(data.train_set) == 5 * PER_BATCH and len(data.val_set) == PER_BATCH

    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and ((labels >= 0) & (labels < 10)).all()

    # Eval only normalises with the published CIFAR-10 statistics.
    images, labels = next(iter(data.val_dataloader()))
    test_images, test_labels = batches["test_batch"]
    mean = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
    std = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)
    expected = (test_images[:4].astype(np.float32) / 255 - mean) / std
    torch.testing.assert_close(images, torch.tensor(expected).permute(0, 3, 1, 2))
    assert labels.tolist() == test_labels[:4]


def test_pixels_round_trip_in_train_order(tmp_path):
    batches = write_cifar(tmp_path)  # files directly in root
    data = CIFAR10DataModule(tmp_path, num_workers=0, augment=NO_AUGMENT, **NO_NORMALISATION)
    data.setup()
    image, label = data.train_set[PER_BATCH * 2 + 1]  # data_batch_3, second image
    pixels, labels = batches["data_batch_3"]
    expected = torch.tensor(pixels[1].astype(np.float32) / 255).permute(2, 0, 1)
    torch.testing.assert_close(image, expected, rtol=0, atol=1e-6)
    assert label == labels[1]


def test_config_instantiates_with_the_code_defaults(tmp_path):
    write_cifar(tmp_path)
    cfg = OmegaConf.load(CONFIG)
    assert set(cfg.augment) == set(AUGMENT_KEYS)
    with pytest.raises(MissingMandatoryValue):
        instantiate(cfg)
    cfg.root = str(tmp_path)
    cfg.num_workers = 0
    data = instantiate(cfg)
    assert isinstance(data, CIFAR10DataModule) and data.batch_size == 128
    defaults = CIFAR10DataModule(tmp_path)
    assert repr(data.train_transform) == repr(defaults.train_transform)
    assert repr(data.val_transform) == repr(defaults.val_transform)


def test_missing_root_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        CIFAR10DataModule(tmp_path / "nowhere")
    write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    (tmp_path / "cifar-10-batches-py" / "batches.meta").unlink()
    message = r"under .*cifar-10-batches-py .*missing: data_batch_3, batches.meta"
    with pytest.raises(FileNotFoundError, match=message):
        CIFAR10DataModule(tmp_path)


def without_labels(batch: dict) -> dict:
    return {key: value for key, value in batch.items() if key != b"labels"}


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda batch: b"not a pickle", "data_batch_2 is not a readable pickle"),
        (lambda batch: [batch], "data_batch_2 should hold a dict, got list"),
        (without_labels, r"data_batch_2 lacks the keys \['labels'\]"),
        (
            lambda batch: {**batch, b"data": batch[b"data"].astype(np.float32)},
            r"data_batch_2: 'data' should be a uint8 array \(N, 3072\), got float32",
        ),
        (
            lambda batch: {**batch, b"data": batch[b"data"][:, :1024]},
            r"'data' should be a uint8 array \(N, 3072\), got uint8 array of shape \(6, 1024\)",
        ),
        (
            lambda batch: {**batch, b"labels": batch[b"labels"][:5]},
            r"data_batch_2 has 6 images but labels of shape \(5,\)",
        ),
        (
            lambda batch: {**batch, b"labels": [10] * PER_BATCH},
            r"data_batch_2: labels should be ints in 0..9",
        ),
        (
            lambda batch: {**batch, b"labels": [-1] * PER_BATCH},
            r"data_batch_2: labels should be ints in 0..9",
        ),
    ],
)
def test_malformed_batch(tmp_path, corrupt, message):
    write_cifar(tmp_path)
    path = tmp_path / "data_batch_2"
    with path.open("rb") as file:
        batch = pickle.load(file)
    content = corrupt(batch)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        dump(path, content)
    data = CIFAR10DataModule(tmp_path, num_workers=0)
    with pytest.raises(ValueError, match=message):
        data.setup()


def test_malformed_meta_and_augment(tmp_path):
    write_cifar(tmp_path)
    with pytest.raises(ValueError, match=r"unknown keys \['flip'\]"):
        CIFAR10DataModule(tmp_path, augment={"flip": False})
    dump(tmp_path / "batches.meta", {b"label_names": [b"cat"] * 3})
    with pytest.raises(ValueError, match="batches.meta should list 10 label_names, got 3"):
        CIFAR10DataModule(tmp_path)
    dump(tmp_path / "batches.meta", {b"names": []})
    with pytest.raises(ValueError, match=r"batches.meta lacks the keys \['label_names'\]"):
        CIFAR10DataModule(tmp_path)
