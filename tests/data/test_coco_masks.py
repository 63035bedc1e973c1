"""COCO instance masks (``with_masks``) against pycocotools: ``COCO.annToMask`` of the same JSON, and
``pycocotools.mask`` for the three segmentation forms (polygons, uncompressed RLE, compressed RLE).

RLE is decoded exactly. Polygons: pycocotools digitises the outline on a 1/5-pixel grid, zoo tests each pixel's
centre, so the two may differ on pixels whose centre lies near the outline, and only there.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torch.nn import functional as F  # noqa: N812

from zoo.data.coco import CocoDetection, CocoDetectionDataModule, segmentation_mask
from zoo.data.detection import check_detection_target

HEIGHT, WIDTH = 36, 50  # image 1; image 2 is 40 × 30 (H × W), taller than wide


def blob(seed, height=HEIGHT, width=WIDTH):
    """uint8 [H, W]: a few random discs, holes and specks, so RLE runs are long and short."""
    gen = np.random.default_rng(seed)
    ys, xs = np.mgrid[:height, :width] + 0.5
    mask = np.zeros((height, width), bool)
    for _ in range(3):
        cx, cy, r = gen.uniform(0, width), gen.uniform(0, height), gen.uniform(2, 12)
        mask ^= (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
    mask[gen.random((height, width)) < 0.02] ^= True
    return mask.astype(np.uint8)


def uncompressed_rle(mask):
    """COCO's uncompressed RLE of a mask: runs of 0s then 1s ... down the columns."""
    flat = np.asfortranarray(mask).ravel(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    return {"counts": runs if flat[0] == 0 else [0, *runs], "size": list(mask.shape)}


def compressed_rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"counts": rle["counts"].decode("ascii"), "size": rle["size"]}


def random_polygon(gen, height, width, points):
    """A star-shaped polygon (concave for most draws) of ``points`` vertices, partly outside the image at times."""
    cx, cy = gen.uniform(0, width), gen.uniform(0, height)
    angles = np.sort(gen.uniform(0, 2 * np.pi, points))
    radii = gen.uniform(2, 18, points)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).ravel().round(2).tolist()


def box_of(mask):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def write_coco(root, annotations, sizes=None):
    """Images 1.png (36 × 50) and 2.png (40 × 30) and an instances JSON; returns (json path, image folder)."""
    sizes = sizes or {1: (HEIGHT, WIDTH), 2: (40, 30)}  # id: (height, width)
    (root / "images").mkdir(exist_ok=True)
    for image_id, (height, width) in sizes.items():
        Image.new("RGB", (width, height), (90, 160, 30)).save(root / "images" / f"{image_id}.png")
    data = {
        "images": [{"id": i, "file_name": f"{i}.png", "height": h, "width": w} for i, (h, w) in sizes.items()],
        "annotations": [{"id": index + 1, "iscrowd": 0, **a} for index, a in enumerate(annotations)],
        "categories": [{"id": 4, "name": "a"}, {"id": 9, "name": "b"}],
    }
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    return path, root / "images"


def mixed_annotations():
    """Each form on image 1 and 2, a crowd (left out of the targets) and a zero-width box (left out too)."""
    gen = np.random.default_rng(0)
    first, second, third = blob(1), blob(2), blob(3, 40, 30)
    polygons = [random_polygon(gen, HEIGHT, WIDTH, 7), random_polygon(gen, HEIGHT, WIDTH, 5)]
    return [
        {"image_id": 1, "category_id": 4, "bbox": box_of(first), "segmentation": compressed_rle(first)},
        {"image_id": 1, "category_id": 9, "bbox": box_of(second), "segmentation": uncompressed_rle(second)},
        {"image_id": 1, "category_id": 9, "bbox": [0, 0, 10, 10], "segmentation": polygons},
        {
            "image_id": 1,
            "category_id": 4,
            "bbox": [0, 0, 50, 36],
            "iscrowd": 1,
            "segmentation": uncompressed_rle(first),
        },
        {"image_id": 1, "category_id": 4, "bbox": [3, 3, 0, 5], "segmentation": compressed_rle(second)},
        {"image_id": 2, "category_id": 9, "bbox": box_of(third), "segmentation": compressed_rle(third)},
        {"image_id": 2, "category_id": 4, "bbox": box_of(third), "segmentation": uncompressed_rle(third)},
    ]


def reference_masks(path, image_id):
    """pycocotools' masks of the annotations the loader keeps (not crowds, boxes of positive size), in file order."""
    coco = COCO(str(path))
    kept = [a for a in coco.imgToAnns[image_id] if not a["iscrowd"] and a["bbox"][2] > 0 and a["bbox"][3] > 0]
    return torch.from_numpy(np.stack([coco.annToMask(a) for a in kept]))


# --------------------------------------------------------------------------------------------- against annToMask


def test_rle_masks_equal_ann_to_mask(tmp_path, capsys):
    path, images = write_coco(tmp_path, mixed_annotations())
    data = CocoDetection(path, images, image_size=WIDTH, with_masks=True)  # scale 1: masks at the image's pixels
    _, target = data[0]
    expected = reference_masks(path, 1)
    masks = target["masks"]
    assert masks.dtype == torch.uint8 and masks.shape == (3, WIDTH, WIDTH)
    assert torch.equal(masks[:2, :HEIGHT], expected[:2])  # compressed and uncompressed RLE: exact
    assert not masks[:, HEIGHT:].any()  # the padding below the image
    check_detection_target(target, 0, num_classes=3, mask_size=(WIDTH, WIDTH))
    assert target["labels"].tolist() == [1, 2, 2]


def test_polygon_masks_differ_from_ann_to_mask_only_along_the_outline(tmp_path, capsys):
    path, images = write_coco(tmp_path, mixed_annotations())
    _, target = CocoDetection(path, images, image_size=WIDTH, with_masks=True)[0]
    ours, expected = target["masks"][2, :HEIGHT], reference_masks(path, 1)[2]
    differ = ours != expected
    assert differ.sum() <= 0.05 * expected.sum()
    assert not (differ & ~_near_outline(mixed_annotations()[2]["segmentation"], HEIGHT, WIDTH)).any()


def test_masks_follow_the_resize_and_padding(tmp_path, capsys):
    path, images = write_coco(tmp_path, mixed_annotations())
    data = CocoDetection(path, images, image_size=64, with_masks=True)
    for index, image_id in enumerate([1, 2]):
        image, target = data[index]
        expected = reference_masks(path, image_id)
        height, width = expected.shape[1:]
        scale = 64 / max(height, width)
        size = (round(height * scale), round(width * scale))
        resized = F.interpolate(expected[None].float(), size=size, mode="nearest-exact")[0].to(torch.uint8)
        resized = F.pad(resized, (0, 64 - size[1], 0, 64 - size[0]))
        rle = [0, 1] if image_id == 1 else [0, 1]  # the RLE annotations (image 1's polygons are tested above)
        assert torch.equal(target["masks"][rle], resized[rle])
        assert target["masks"].shape == (len(target["boxes"]), *image.shape[1:])


def test_data_module_batches_carry_masks(tmp_path, capsys):
    path, images = write_coco(tmp_path, mixed_annotations())
    module = CocoDetectionDataModule(path, images, path, images, 48, 2, 0, with_masks=True)
    module.setup()
    _, targets = next(iter(module.train_dataloader()))
    assert [t["masks"].shape for t in targets] == [(3, 48, 48), (2, 48, 48)]
    plain = CocoDetectionDataModule(path, images, path, images, 48, 2, 0)
    plain.setup()
    assert all("masks" not in t for t in next(iter(plain.train_dataloader()))[1])


# ------------------------------------------------------------------------------------------- against pycocotools


def test_compressed_rle_strings_decode_exactly():
    # Long runs need several characters, runs shorter than the one two before give negative differences.
    gen = np.random.default_rng(1)
    for seed in range(40):
        height, width = int(gen.integers(1, 90)), int(gen.integers(1, 90))
        mask = blob(seed, height, width)
        if seed % 10 == 0:
            mask[:] = seed % 20 == 0  # all 0s, all 1s
        rle = compressed_rle(mask)
        assert torch.equal(segmentation_mask(rle, height, width), torch.from_numpy(mask)), seed


def test_uncompressed_rle_decodes_as_pycocotools():
    mask = blob(5)
    rle = uncompressed_rle(mask)
    expected = mask_utils.decode(mask_utils.frPyObjects(rle, HEIGHT, WIDTH))
    assert torch.equal(segmentation_mask(rle, HEIGHT, WIDTH), torch.from_numpy(expected))


def _near_outline(polygons, height, width, distance=0.75):
    """bool [H, W]: pixels whose centre lies within ``distance`` of an edge of the polygons."""
    ys, xs = np.mgrid[:height, :width] + 0.5
    near = np.zeros((height, width), bool)
    for polygon in polygons:
        points = np.asarray(polygon).reshape(-1, 2)
        for (x0, y0), (x1, y1) in zip(points, np.roll(points, -1, 0), strict=True):
            length = max((x1 - x0) ** 2 + (y1 - y0) ** 2, 1e-12)
            t = np.clip(((xs - x0) * (x1 - x0) + (ys - y0) * (y1 - y0)) / length, 0, 1)
            near |= np.hypot(xs - (x0 + t * (x1 - x0)), ys - (y0 + t * (y1 - y0))) <= distance
    return near


def test_polygons_agree_with_pycocotools_up_to_outline_pixels():
    gen = np.random.default_rng(2)
    differing = total = 0
    for _ in range(100):
        polygons = [random_polygon(gen, HEIGHT, WIDTH, int(gen.integers(3, 12))) for _ in range(gen.integers(1, 3))]
        expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, HEIGHT, WIDTH)))
        ours = segmentation_mask(polygons, HEIGHT, WIDTH).numpy()
        differ = ours != expected
        assert not (differ & ~_near_outline(polygons, HEIGHT, WIDTH)).any()
        differing, total = differing + differ.sum(), total + expected.sum()
    assert differing <= 0.03 * total


def test_polygon_of_fewer_than_three_points_is_empty():
    assert not segmentation_mask([[5.0, 5.0, 20.0, 20.0]], HEIGHT, WIDTH).any()
    assert not segmentation_mask([], HEIGHT, WIDTH).any()


# --------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("segmentation", "message"),
    [
        (None, r"annotation 1 \(image 1\) has no 'segmentation', which with_masks needs"),
        ([[1.0, 2.0, 3.0]], r"annotation 1 \(image 1\): expected a segmentation of polygons"),
        ({"counts": [1800], "size": [50, 36]}, r"annotation 1 \(image 1\): .*'size': \[36, 50\]"),
        ({"counts": "abc"}, r"annotation 1 \(image 1\): expected a segmentation"),
        ("polygon", r"annotation 1 \(image 1\): expected a segmentation"),
    ],
)
def test_bad_segmentation_names_the_annotation(tmp_path, segmentation, message):
    annotation = {"image_id": 1, "category_id": 4, "bbox": [1, 1, 5, 5]}
    if segmentation is not None:
        annotation["segmentation"] = segmentation
    path, images = write_coco(tmp_path, [annotation])
    CocoDetection(path, images)  # without masks the segmentation is not read
    with pytest.raises(ValueError, match=message):
        CocoDetection(path, images, with_masks=True)


def test_rle_counts_that_do_not_fill_the_image_are_an_error(tmp_path):
    annotation = {
        "image_id": 1,
        "category_id": 4,
        "bbox": [1, 1, 5, 5],
        "segmentation": {"counts": [10, 5], "size": [36, 50]},
    }
    path, images = write_coco(tmp_path, [annotation])
    data = CocoDetection(path, images, with_masks=True)
    with pytest.raises(
        ValueError, match=r"annotation 1 \(image 1\): RLE counts must be runs >= 0 adding up to 36 × 50"
    ):
        data[0]


def test_with_masks_must_be_a_bool(tmp_path):
    path, images = write_coco(tmp_path, mixed_annotations())
    with pytest.raises(TypeError, match="with_masks must be true or false"):
        CocoDetection(path, images, with_masks="yes")
    with pytest.raises(TypeError, match="data.with_masks must be true or false"):
        CocoDetectionDataModule(path, images, path, images, with_masks=1)
