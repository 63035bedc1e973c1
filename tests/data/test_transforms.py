import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as v1

from zoo.data.transforms import AUGMENT_KEYS, build_transforms, resolve_augment

NO_NORMALISATION = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def random_pixels(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def as_unit_tensor(pixels: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, H, W) float in [0, 1], written out without torchvision."""
    return torch.tensor(pixels.astype(np.float32) / 255).permute(2, 0, 1)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float rounding; neighbouring grey levels differ by 1/255 ≈ 4e-3."""
    return a.shape == b.shape and torch.allclose(a, b, rtol=0, atol=1e-6)


def test_eval_matches_torchvision_reference_preset():
    # torchvision's ImageNet eval preset: resize the short side to 256, centre-crop 224.
    image = Image.fromarray(random_pixels(300, 400))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    reference = v1.Compose([v1.Resize(256), v1.CenterCrop(224), v1.ToTensor(), v1.Normalize(mean, std)])
    ours = build_transforms(False, 224, mean, std)(image)
    assert ours.shape == (3, 224, 224) and ours.dtype == torch.float32
    # PIL and tensor resampling round differently: allow one grey level.
    grey_levels = (ours - reference(image)).abs() * torch.tensor(std).view(3, 1, 1) * 255
    assert grey_levels.max() <= 1 + 1e-4


def test_eval_is_deterministic_and_ignores_augmentation():
    pixels = random_pixels(30, 40)
    transform = build_transforms(False, 16, (0.5,) * 3, (0.25,) * 3, color_jitter=0.4)
    first = transform(pixels)
    assert first.shape == (3, 16, 16)
    assert torch.equal(first, transform(pixels))


def test_eval_without_resize_only_crops_the_centre():
    pixels = random_pixels(24, 20)
    out = build_transforms(False, 20, resize_eval=False, **NO_NORMALISATION)(pixels)
    assert same(out, as_unit_tensor(pixels[2:22]))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"color_jitter": 0.4, "scale": (0.5, 1.0)},
        {"random_resized_crop": False, "random_crop_padding": 4},
        {"random_resized_crop": False, "hflip": False},
    ],
)
def test_train_output_shape(options):
    torch.manual_seed(0)
    out = build_transforms(True, 32, (0.5,) * 3, (0.25,) * 3, **options)(random_pixels(40, 36))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32


def test_train_flip_gives_the_mirror_image_for_some_seeds():
    pixels = random_pixels(8, 8)
    transform = build_transforms(True, 8, random_resized_crop=False, resize_eval=False, **NO_NORMALISATION)
    original = as_unit_tensor(pixels)
    mirrored = as_unit_tensor(pixels[:, ::-1].copy())
    outputs = []
    for seed in range(20):
        torch.manual_seed(seed)
        outputs.append(transform(pixels))
    assert any(same(out, mirrored) for out in outputs)
    assert any(same(out, original) for out in outputs)
    assert all(same(out, mirrored) or same(out, original) for out in outputs)


def test_padded_random_crop_is_a_window_of_the_zero_padded_image():
    pixels = random_pixels(8, 8)
    padded = np.pad(pixels, ((2, 2), (2, 2), (0, 0)))
    windows = [as_unit_tensor(padded[y : y + 8, x : x + 8]) for y in range(5) for x in range(5)]
    transform = build_transforms(
        True,
        8,
        random_resized_crop=False,
        random_crop_padding=2,
        hflip=False,
        **NO_NORMALISATION,
    )
    for seed in range(5):
        torch.manual_seed(seed)
        out = transform(pixels)
        assert any(same(out, window) for window in windows)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"image_size": 0}, "image_size must be an int >= 1, got 0"),
        ({"image_size": 2.5}, "image_size must be an int >= 1, got 2.5"),
        ({"image_size": True}, "image_size must be an int >= 1, got True"),
        ({"mean": (0.5, 0.5)}, "mean must have one value per channel: 3 for 3-channel images, got 2"),
        ({"mean": "rgb"}, "mean must be a sequence of 3 floats"),
        ({"std": (0.2, 0.0, 0.2)}, "std must be > 0"),
        ({"color_jitter": -0.1}, "color_jitter must be a number >= 0, got -0.1"),
        ({"scale": (0.8, 0.2)}, r"scale must be \(low, high\)"),
        ({"random_crop_padding": -1}, "random_crop_padding must be an int >= 0, got -1"),
        ({"random_crop_padding": 4}, "applies only with random_resized_crop=False"),
    ],
)
def test_argument_errors(arguments, message):
    kwargs = {"train": True, "image_size": 32, "mean": (0.5,) * 3, "std": (0.25,) * 3, **arguments}
    with pytest.raises(ValueError, match=message):
        build_transforms(**kwargs)


def test_resolve_augment_overrides_defaults_and_rejects_unknown_keys():
    assert set(AUGMENT_KEYS) == {
        "random_resized_crop",
        "scale",
        "hflip",
        "color_jitter",
        "random_crop_padding",
        "resize_eval",
    }
    assert resolve_augment({"hflip": True, "color_jitter": 0.1}, {"hflip": False}) == {
        "hflip": False,
        "color_jitter": 0.1,
    }
    assert resolve_augment({"hflip": True}, None) == {"hflip": True}
    with pytest.raises(ValueError, match=r"unknown keys \['flip'\]"):
        resolve_augment({}, {"flip": True})
    with pytest.raises(ValueError, match="must be a mapping"):
        resolve_augment({}, ["hflip"])
