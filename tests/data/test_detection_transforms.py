"""Detection augmentation against torchvision.transforms.v2 (the same operation on the image, BoundingBoxes
and Mask) and against the rendered scenes, whose object pixels are known: the boxes must still frame them."""

import re

import pytest
import torch
from hydra.utils import instantiate
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF  # noqa: N812
from train_helpers import compose_train

from zoo.data.detection import SyntheticDetectionDataModule
from zoo.data.detection_transforms import (
    AugmentedDetection,
    DetectionAugment,
    Mosaic,
    RandomAffine,
    RandomHorizontalFlip,
    RandomResizedCrop,
    affine,
    horizontal_flip,
    mosaic,
    resized_crop,
)
from zoo.data.synthetic import render_scenes
from zoo.training import train

SIZE = 64


def scene(seed: int, objects: int = 3, size: int = SIZE):
    """A rendered scene: image, and a target whose masks are the objects' pixels (coverage >= 0.5)."""
    scenes = render_scenes(1, size, objects, generator=torch.Generator().manual_seed(seed))
    visible = scenes.boxes[0].any(dim=1)
    masks = (scenes.coverage[0][visible] >= 0.5).to(torch.uint8)
    target = {"boxes": scenes.boxes[0][visible], "labels": scenes.labels[0][visible] + 1, "masks": masks}
    return scenes.images[0], target


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """xyxy pixel-edge boxes around each mask's pixels (torchvision.ops.masks_to_boxes gives the pixel
    centres' extent, so + 1 on the far edges)."""
    from torchvision.ops import masks_to_boxes

    return masks_to_boxes(masks) + torch.tensor([0.0, 0.0, 1.0, 1.0])


def tv_boxes(boxes: torch.Tensor, size, clamp: bool = True):
    return tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=size, clamping_mode="soft" if clamp else None)


def kept_by_rule(unclipped: torch.Tensor, clipped: torch.Tensor, fraction: float = 0.5) -> torch.Tensor:
    """The documented dropping rule, written out: positive clipped sides, clipped area >= fraction x area."""
    sides = clipped[:, 2:] - clipped[:, :2]
    area = (unclipped[:, 2:] - unclipped[:, :2]).prod(1)
    return (sides > 0).all(1) & (sides.prod(1) >= fraction * area)


def assert_frames(boxes, masks, size, tolerance=1.0, tight=True):
    """Each box frames its mask's pixels: equal to their bounding box within ``tolerance`` px where the
    object is whole (not cut by the image border) and ``tight``, containing them otherwise (a rotated one)."""
    assert len(boxes) == len(masks)
    for box, mask in zip(boxes, masks, strict=True):
        assert mask.any(), f"box {box.tolist()} kept with no object pixels"
        pixels = mask_boxes(mask[None].bool())[0]
        cut = (box[:2] <= 0).any() or box[2] >= size[1] or box[3] >= size[0]
        assert (pixels[:2] >= box[:2] - tolerance).all() and (pixels[2:] <= box[2:] + tolerance).all()
        if tight and not cut:
            torch.testing.assert_close(box, pixels, atol=tolerance, rtol=0)


# ------------------------------------------------------------------------------------------------ flip


def test_flip_equals_torchvision():
    image, target = scene(0)
    flipped, out = horizontal_flip(image, target)
    assert torch.equal(flipped, TF.horizontal_flip(image))
    assert torch.equal(
        out["boxes"], TF.horizontal_flip(tv_boxes(target["boxes"], (SIZE, SIZE))).as_subclass(torch.Tensor)
    )
    assert torch.equal(out["masks"], TF.horizontal_flip(tv_tensors.Mask(target["masks"])).as_subclass(torch.Tensor))
    assert torch.equal(out["labels"], target["labels"])
    assert_frames(out["boxes"], out["masks"], (SIZE, SIZE), tolerance=0)


def test_random_flip_probability():
    image, target = scene(1)
    assert torch.equal(RandomHorizontalFlip(0.0)(image, target, 0)[0], image)
    assert torch.equal(RandomHorizontalFlip(1.0)(image, target, 0)[0], image.flip(-1))


# ------------------------------------------------------------------------------------------------ resized crop


@pytest.mark.parametrize("window", [(0, 0, SIZE, SIZE), (5, 9, 40, 30), (20, 0, 44, 64), (10, 30, 20, 34)])
def test_resized_crop_equals_torchvision(window):
    image, target = scene(2)
    out_image, out = resized_crop(image, target, *window, (SIZE, SIZE))
    torch.testing.assert_close(out_image, TF.resized_crop(image, *window, [SIZE, SIZE], antialias=True))
    clipped = TF.resized_crop(tv_boxes(target["boxes"], (SIZE, SIZE)), *window, [SIZE, SIZE]).as_subclass(torch.Tensor)
    unclipped = TF.resized_crop(tv_boxes(target["boxes"], (SIZE, SIZE), clamp=False), *window, [SIZE, SIZE])
    keep = kept_by_rule(unclipped.as_subclass(torch.Tensor), clipped)
    torch.testing.assert_close(out["boxes"], clipped[keep])
    assert torch.equal(out["labels"], target["labels"][keep])
    # torchvision's resized_crop resizes masks by NEAREST whatever it is asked; crop + resize honour NEAREST_EXACT.
    cropped = TF.crop(tv_tensors.Mask(target["masks"]), *window)
    masks = TF.resize(cropped, [SIZE, SIZE], interpolation=InterpolationMode.NEAREST_EXACT)
    assert torch.equal(out["masks"], masks.as_subclass(torch.Tensor)[keep])


@pytest.mark.parametrize("seed", range(6))
def test_random_resized_crop_boxes_frame_the_object_pixels(seed):
    image, target = scene(10 + seed)
    out_image, out = RandomResizedCrop(scale=(0.3, 1.0))(image, target, generator=seed)
    assert out_image.shape == image.shape
    assert_frames(out["boxes"], out["masks"], (SIZE, SIZE))


# ------------------------------------------------------------------------------------------------ affine

AFFINE_CASES = [
    (0.0, (0.0, 0.0), 1.0, (0.0, 0.0)),  # identity
    (0.0, (7.0, -5.0), 1.0, (0.0, 0.0)),  # shift
    (30.0, (0.0, 0.0), 1.0, (0.0, 0.0)),  # rotation
    (-15.0, (3.5, 2.0), 0.8, (8.0, -4.0)),  # all at once, zoomed out
    (12.0, (-4.0, 6.0), 1.3, (0.0, 10.0)),  # zoomed in: objects cut by the border
]


@pytest.mark.parametrize("angle, translate, scale, shear", AFFINE_CASES)
def test_affine_equals_torchvision(angle, translate, scale, shear):
    image, target = scene(3)
    params = dict(angle=angle, translate=list(translate), scale=scale, shear=list(shear))
    out_image, out = affine(image, target, angle, translate, scale, shear)
    expected = TF.affine(image, **params, interpolation=InterpolationMode.BILINEAR)
    torch.testing.assert_close(out_image, expected, atol=1e-5, rtol=0)
    clipped = TF.affine(tv_boxes(target["boxes"], (SIZE, SIZE)), **params).as_subclass(torch.Tensor)
    unclipped = TF.affine(tv_boxes(target["boxes"], (SIZE, SIZE), clamp=False), **params).as_subclass(torch.Tensor)
    keep = kept_by_rule(unclipped, clipped)
    torch.testing.assert_close(out["boxes"], clipped[keep], atol=1e-4, rtol=0)
    assert torch.equal(out["labels"], target["labels"][keep])
    masks = TF.affine(tv_tensors.Mask(target["masks"]), **params).as_subclass(torch.Tensor)[keep]
    # Nearest sampling may round a pixel centre lying exactly on an edge either way.
    assert (out["masks"] != masks).float().mean() < 1e-3


@pytest.mark.parametrize("seed", range(6))
def test_random_affine_box_contains_the_rotated_object(seed):
    """The enclosing box of the transformed corners holds every pixel of the object torchvision moves."""
    image, target = scene(20 + seed)
    transform = RandomAffine(degrees=40, translate=0.1, scale=(0.8, 1.2), shear=10)
    out_image, out = transform(image, target, generator=seed)
    angle, shift, scale, shear = transform.get_params(SIZE, SIZE, torch.Generator().manual_seed(seed))
    params = dict(angle=angle, translate=list(shift), scale=scale, shear=list(shear))
    clipped = TF.affine(tv_boxes(target["boxes"], (SIZE, SIZE)), **params).as_subclass(torch.Tensor)
    unclipped = TF.affine(tv_boxes(target["boxes"], (SIZE, SIZE), clamp=False), **params).as_subclass(torch.Tensor)
    keep = kept_by_rule(unclipped, clipped)
    moved = TF.affine(tv_tensors.Mask(target["masks"]), **params).as_subclass(torch.Tensor)[keep]
    assert len(out["boxes"]) == len(moved)
    for box, mask in zip(out["boxes"], moved, strict=True):
        ys, xs = mask.nonzero(as_tuple=True)
        assert len(xs) > 0
        assert xs.min() >= box[0] - 1 and xs.max() + 1 <= box[2] + 1
        assert ys.min() >= box[1] - 1 and ys.max() + 1 <= box[3] + 1


# ------------------------------------------------------------------------------------------------ mosaic


@pytest.mark.parametrize("center", [(32, 32), (18, 45), (47, 16)])
def test_mosaic_places_each_image_and_its_objects(center):
    """Each image, resized by torchvision to half the canvas and padded/cropped by torchvision's crop to its
    place, appears in its quadrant; its surviving boxes are torchvision's moved boxes and frame its pixels."""
    samples = [scene(30 + i) for i in range(4)]
    out_image, out = mosaic(samples, center)
    cx, cy = center
    half = [SIZE // 2, SIZE // 2]
    expected_image = torch.zeros_like(out_image)
    boxes, labels, masks = [], [], []
    for quadrant, (image, target) in enumerate(samples):
        x0 = cx - half[1] if quadrant % 2 == 0 else cx
        y0 = cy - half[0] if quadrant < 2 else cy
        place = dict(top=-y0, left=-x0, height=SIZE, width=SIZE)  # a negative offset pads: the image moves to (x0, y0)
        expected_image += TF.crop(TF.resize(image, half, antialias=True), **place)
        clipped = TF.crop(TF.resize(tv_boxes(target["boxes"], (SIZE, SIZE)), half), **place)
        unclipped = TF.crop(TF.resize(tv_boxes(target["boxes"], (SIZE, SIZE), clamp=False), half), **place)
        keep = kept_by_rule(unclipped.as_subclass(torch.Tensor), clipped.as_subclass(torch.Tensor))
        moved_masks = TF.resize(tv_tensors.Mask(target["masks"]), half, interpolation=InterpolationMode.NEAREST_EXACT)
        boxes.append(clipped.as_subclass(torch.Tensor)[keep])
        labels.append(target["labels"][keep])
        masks.append(TF.crop(moved_masks, **place).as_subclass(torch.Tensor)[keep])
    torch.testing.assert_close(out_image, expected_image)
    torch.testing.assert_close(out["boxes"], torch.cat(boxes))
    assert torch.equal(out["labels"], torch.cat(labels)) and torch.equal(out["masks"], torch.cat(masks))
    assert_frames(out["boxes"], out["masks"], (SIZE, SIZE))
    assert len(out["boxes"]) > 0


def test_random_mosaic_keeps_the_size_and_frames_objects():
    samples = [scene(40 + i) for i in range(4)]
    for seed in range(4):
        image, target = Mosaic()(samples, generator=seed)
        assert image.shape == (3, SIZE, SIZE)
        assert_frames(target["boxes"], target["masks"], (SIZE, SIZE))


# ------------------------------------------------------------------------------------------------ the rule


@pytest.mark.parametrize("shift, fraction, kept", [(-4.0, 0.5, True), (-6.0, 0.5, False), (-6.0, 0.3, True)])
def test_dropping_rule(shift, fraction, kept):
    """A 10 px box shifted by ``shift`` past the left border keeps (10 + shift) / 10 of its area; it stays
    (with its label and mask) when that is at least ``min_area_fraction``."""
    image = torch.zeros(3, 40, 40)
    masks = torch.zeros(2, 40, 40, dtype=torch.uint8)
    masks[0, 0:10, 0:10] = 1
    masks[1, 20:30, 20:30] = 1
    target = {
        "boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]),
        "labels": torch.tensor([3, 7]),
        "masks": masks,
    }
    _, out = affine(image, target, 0.0, (shift, 0.0), 1.0, (0.0, 0.0), min_area_fraction=fraction)
    first = [[0.0, 0.0, 10 + shift, 10.0]] if kept else []
    torch.testing.assert_close(out["boxes"], torch.tensor([*first, [20 + shift, 20, 30 + shift, 30]]))
    assert out["labels"].tolist() == ([3, 7] if kept else [7])
    assert len(out["masks"]) == len(out["labels"]) and out["masks"][-1].sum() == 100


# ------------------------------------------------------------------------------------------------ seeds


def test_same_seed_same_result():
    image, target = scene(5)
    samples = [scene(50 + i) for i in range(4)]
    for transform in (RandomHorizontalFlip(), RandomResizedCrop(), RandomAffine(degrees=30, shear=5)):
        first, again = transform(image, target, 7), transform(image, target, torch.Generator().manual_seed(7))
        assert torch.equal(first[0], again[0]) and torch.equal(first[1]["boxes"], again[1]["boxes"])
    outputs = [transform(image, target, seed)[0] for seed in range(8) for transform in [RandomAffine()]]
    assert not all(torch.equal(outputs[0], other) for other in outputs[1:])
    assert torch.equal(Mosaic()(samples, 3)[0], Mosaic()(samples, 3)[0])
    assert not torch.equal(Mosaic()(samples, 3)[0], Mosaic()(samples, 4)[0])


# ------------------------------------------------------------------------------------------------ bad input


def test_bad_input_says_what_was_expected():
    image, target = scene(6)
    n = len(target["boxes"])
    cases = [
        ({**target, "boxes": torch.zeros(n, 3)}, "expected shape [N, 4], got [" + f"{n}, 3]"),
        ({**target, "masks": target["masks"][:0]}, f"expected one mask per box ({n}), got 0 masks"),
        ({**target, "masks": target["masks"][:, :32]}, "masks must have the image's size 64×64 (H×W), got 32×64"),
        ({**target, "labels": target["labels"][:1]}, f"labels must have shape [{n}], got [1]"),
    ]
    for transform in (horizontal_flip, RandomResizedCrop(), RandomAffine()):
        for bad, message in cases:
            with pytest.raises(ValueError, match=re.escape(message)):
                transform(image, bad) if transform is horizontal_flip else transform(image, bad, 0)
    with pytest.raises(TypeError, match="expected a float tensor"):
        horizontal_flip(image.numpy(), target)
    with pytest.raises(ValueError, match=r"expected a float tensor \[C, H, W\], got torch.float32 of shape \[64, 64\]"):
        horizontal_flip(image[0], target)
    with pytest.raises(ValueError, match="expected 4 .image, target. samples, got 3 samples"):
        Mosaic()([(image, target)] * 3, 0)
    with pytest.raises(ValueError, match="mosaic: target of image 2: expected one mask per box"):
        mosaic([(image, target)] * 2 + [(image, {**target, "masks": target["masks"][:0]}), (image, target)], (32, 32))


def test_bad_augment_options():
    with pytest.raises(ValueError, match=r"unknown keys \['flip'\]; expected some of \['hflip'"):
        DetectionAugment.from_config({"flip": 0.5})
    with pytest.raises(ValueError, match=r"data.augment.mosaic: expected a probability in \[0, 1\], got 2"):
        DetectionAugment.from_config({"mosaic": 2})
    with pytest.raises(ValueError, match=r"data.augment: RandomAffine: degrees: expected a number in \[0, 180\]"):
        DetectionAugment.from_config({"affine_degrees": 500})
    with pytest.raises(ValueError, match=r"RandomResizedCrop: scale: expected \(min, max\)"):
        RandomResizedCrop(scale=(0.9, 0.1))


# ------------------------------------------------------------------------------------------------ data module


def test_data_module_augments_training_only():
    options = {"hflip": 0.5, "mosaic": 0.5, "affine": 0.5, "random_resized_crop": 0.5}
    plain = SyntheticDetectionDataModule(train_size=8, val_size=4, image_size=64, batch_size=4)
    augmented = SyntheticDetectionDataModule(
        train_size=8, val_size=4, image_size=64, batch_size=4, with_masks=True, augment=options
    )
    plain.setup(), augmented.setup()
    assert not isinstance(plain.train_set, AugmentedDetection) and isinstance(augmented.train_set, AugmentedDetection)
    assert not isinstance(augmented.val_set, AugmentedDetection)
    images, targets = next(iter(augmented.train_dataloader()))
    again, _ = next(iter(augmented.train_dataloader()))
    assert images.shape == (4, 3, 64, 64) and torch.equal(images, again)  # same epoch, same augmentation
    for target in targets:
        assert_frames(target["boxes"], target["masks"], (64, 64), tight=False)  # affine may have rotated them
    val_images, _ = next(iter(augmented.val_dataloader()))
    plain_val, _ = next(iter(plain.val_dataloader()))
    assert torch.equal(val_images, plain_val)
    seen = {augmented.train_set[(0, epoch)][0].sum().item() for epoch in range(4)}
    assert len(seen) > 1  # another epoch, another draw


def test_train_runs_with_the_switches_on(tmp_path):
    cfg = compose_train(
        tmp_path,
        "model=yolov3_mobilenet_v2",
        "debug=fast",
        "++model.input_size=64",
        "data.train_size=4",
        "data.val_size=2",
        "data.batch_size=2",
        "data.augment.hflip=0.5",
        "data.augment.mosaic=0.5",
        "data.augment.affine=0.5",
        "data.augment.random_resized_crop=0.5",
    )
    module = instantiate(cfg.data)
    module.setup()
    assert isinstance(module.train_set, AugmentedDetection) and not isinstance(module.val_set, AugmentedDetection)
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["train/loss"])) and 0.0 <= metrics["val/map_50"] <= 1.0


def test_images_without_objects_and_bool_masks():
    image = torch.rand(3, 32, 32)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    empty["masks"] = torch.zeros(0, 32, 32, dtype=torch.bool)
    outputs = [
        horizontal_flip(image, empty),
        RandomResizedCrop()(image, empty, 0),
        RandomAffine(degrees=30)(image, empty, 0),
        Mosaic()([(image, empty)] * 4, 0),
    ]
    for out_image, out in outputs:
        assert out_image.shape == (3, 32, 32) and out["boxes"].shape == (0, 4) and out["labels"].shape == (0,)
        assert out["masks"].shape == (0, 32, 32) and out["masks"].dtype == torch.bool
