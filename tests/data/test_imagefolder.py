from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from zoo.data.imagefolder import ImageFolderDataModule
from zoo.data.transforms import AUGMENT_KEYS

CONFIG = Path(__file__).parents[2] / "configs" / "data" / "imagefolder.yaml"
HEIGHT, WIDTH = 24, 20
NO_AUGMENT = {"random_resized_crop": False, "hflip": False, "resize_eval": False}
NO_NORMALISATION = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def write_images(folder: Path, count: int, seed: int, suffix: str = ".png") -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        pixels = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"image_{i}{suffix}")
        images.append(pixels)
    return images


def write_tree(root: Path) -> dict[str, list[np.ndarray]]:
    """train/{cat,dog} and val/{cat,dog}, 3 lossless PNGs each; returns the pixels by folder."""
    return {
        f"{split}/{name}": write_images(root / split / name, 3, seed)
        for seed, (split, name) in enumerate([("train", "cat"), ("train", "dog"), ("val", "cat"), ("val", "dog")])
    }


def as_unit_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.tensor(pixels.astype(np.float32) / 255).permute(2, 0, 1)


def test_builds_and_loads_batches(tmp_path):
    write_tree(tmp_path)
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    write_images(tmp_path / "train" / "dog" / "more", 1, seed=9, suffix=".jpg")  # nested, JPEG
    data = ImageFolderDataModule(str(tmp_path), image_size=16, batch_size=4, num_workers=0)
    assert data.classes == ["cat", "dog"] and data.num_classes == 2 and data.image_size == 16
    data.setup()
    assert len(data.train_set) == 7 and len(data.val_set) == 6

    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.float32
    assert set(labels.tolist()) <= {0, 1}
    images, labels = next(iter(data.val_dataloader()))
    assert images.shape == (4, 3, 16, 16)
    assert labels.tolist() == [0, 0, 0, 1]


def test_pixels_round_trip(tmp_path):
    pixels = write_tree(tmp_path)
    data = ImageFolderDataModule(tmp_path, image_size=WIDTH, num_workers=0, augment=NO_AUGMENT, **NO_NORMALISATION)
    data.setup()
    # Without resizing, a 24×20 image is centre-cropped to rows 2..21.
    for dataset, split in [(data.train_set, "train"), (data.val_set, "val")]:
        image, label = dataset[4]  # dog/image_1
        images = pixels[f"{split}/dog"]
        assert label == 1
        torch.testing.assert_close(image, as_unit_tensor(images[1][2:22]), rtol=0, atol=1e-6)


def test_grayscale_images_become_rgb(tmp_path):
    write_tree(tmp_path)
    grey = np.arange(HEIGHT * WIDTH, dtype=np.uint8).reshape(HEIGHT, WIDTH)
    Image.fromarray(grey, mode="L").save(tmp_path / "val" / "cat" / "image_0.png")
    data = ImageFolderDataModule(tmp_path, image_size=WIDTH, num_workers=0, augment=NO_AUGMENT, **NO_NORMALISATION)
    data.setup()
    image, _ = data.val_set[0]
    expected = torch.tensor(grey[2:22].astype(np.float32) / 255).expand(3, WIDTH, WIDTH)
    torch.testing.assert_close(image, expected, rtol=0, atol=1e-6)


def test_val_subset_uses_train_indices(tmp_path):
    write_tree(tmp_path)
    write_images(tmp_path / "train" / "ant", 2, seed=7)
    for path in (tmp_path / "val" / "cat").iterdir():
        path.unlink()
    (tmp_path / "val" / "cat").rmdir()
    data = ImageFolderDataModule(tmp_path, num_workers=0)
    assert data.classes == ["ant", "cat", "dog"] and data.num_classes == 3
    assert [label for _, label in data.val_samples] == [2, 2, 2]


def test_config_instantiates_with_the_code_defaults(tmp_path):
    write_tree(tmp_path)
    cfg = OmegaConf.load(CONFIG)
    assert set(cfg.augment) == set(AUGMENT_KEYS)
    cfg.root = str(tmp_path)
    data = instantiate(cfg)
    assert isinstance(data, ImageFolderDataModule) and data.image_size == 224
    defaults = ImageFolderDataModule(tmp_path)
    assert repr(data.train_transform) == repr(defaults.train_transform)
    assert repr(data.val_transform) == repr(defaults.val_transform)


def remove_images(folder: Path) -> None:
    for path in folder.glob("*.png"):
        path.unlink()
    (folder / "notes.txt").write_text("not an image")


def empty_train(root: Path) -> None:
    (root / "train").rename(root / "old_train")
    (root / "train").mkdir()


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (lambda root: (root / "train").rename(root / "x"), FileNotFoundError, "train is not a directory; expected"),
        (lambda root: (root / "val").rename(root / "test"), FileNotFoundError, "val is not a directory; expected"),
        (empty_train, ValueError, "no class folders in .*train"),
        (lambda root: remove_images(root / "train" / "dog"), ValueError, "class folder .*dog holds no images"),
        (lambda root: remove_images(root / "val" / "cat"), ValueError, "class folder .*cat holds no images"),
        (
            lambda root: (root / "val" / "cat").rename(root / "val" / "bird"),
            ValueError,
            r"val classes \['bird'\] .* have no folder in",
        ),
    ],
)
def test_layout_errors(tmp_path, damage, error, message):
    write_tree(tmp_path)
    damage(tmp_path)
    with pytest.raises(error, match=message):
        ImageFolderDataModule(tmp_path)


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.root .*nowhere' is not a directory"):
        ImageFolderDataModule(tmp_path / "nowhere")


def test_corrupt_images_are_named_when_loaded(tmp_path):
    write_tree(tmp_path)
    (tmp_path / "train" / "cat" / "image_0.png").write_bytes(b"not a png")
    truncated = tmp_path / "train" / "dog" / "image_9.jpg"
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    data = ImageFolderDataModule(tmp_path, num_workers=0)
    data.setup()
    with pytest.raises(ValueError, match=r"cannot decode image .*cat/image_0.png"):
        data.train_set[0]
    with pytest.raises(ValueError, match=r"cannot decode image .*dog/image_9.jpg"):
        data.train_set[6]


def test_argument_errors(tmp_path):
    write_tree(tmp_path)
    with pytest.raises(ValueError, match="image_size must be an int >= 1, got 0"):
        ImageFolderDataModule(tmp_path, image_size=0)
    with pytest.raises(ValueError, match=r"unknown keys \['crop'\]"):
        ImageFolderDataModule(tmp_path, augment={"crop": True})
    with pytest.raises(ValueError, match="mean must have one value per channel: 3 for 3-channel images, got 1"):
        ImageFolderDataModule(tmp_path, mean=(0.5,))
