"""Bad input to the data loaders, as a user would hit it (issue 15): each case is a clear ValueError or
FileNotFoundError naming the file and what was expected, or a correct result, never a deep traceback or
a silent wrong answer. Every file is written in tmp_path; nothing is downloaded."""

import json
import math
import pickle
import struct
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import clip_boxes_to_image

from zoo.data.cifar10 import CIFAR10DataModule
from zoo.data.coco import CocoDetection
from zoo.data.imagefolder import ImageFolderDataModule
from zoo.data.segmentation import VOCSegmentation

LABEL_NAMES = "airplane automobile bird cat deer dog frog horse ship truck".split()
CIFAR_FILES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]


# --- 1. CIFAR-10 pickles -------------------------------------------------------------------------------------


class Python2Array:
    """A uint8 numpy array as Python 2's numpy pickled it: ``_reconstruct`` from ``numpy.core.multiarray``,
    a ``numpy.dtype`` with the version-3 state and the raw bytes as a Python 2 str."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


def python2_pickle(content: object) -> bytes:
    """``content`` (dicts, lists, tuples, bytes, ints, None, `Python2Array`) as Python 2's cPickle writes it at
    protocol 2, the format of the official ``cifar-10-python.tar.gz``: str as SHORT_BINSTRING/BINSTRING."""
    out = bytearray(b"\x80\x02")

    def put(value: object) -> None:
        nonlocal out
        if value is None:
            out += b"N"
        elif isinstance(value, bool):
            out += b"\x88" if value else b"\x89"
        elif isinstance(value, int):
            out += b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value)
        elif isinstance(value, bytes):
            out += (b"U" + bytes([len(value)]) if len(value) < 256 else b"T" + struct.pack("<I", len(value))) + value
        elif isinstance(value, dict):
            out += b"}("
            for key, item in value.items():
                put(key)
                put(item)
            out += b"u"
        elif isinstance(value, (list, tuple)):
            out += b"](" if isinstance(value, list) else b"("
            for item in value:
                put(item)
            out += b"e" if isinstance(value, list) else b"t"
        elif isinstance(value, Python2Array):
            out += b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n"
            put((0,))
            put(b"b")
            out += b"tR("  # the empty array, then its state
            put(1)
            put(value.array.shape)
            out += b"cnumpy\ndtype\n"
            put((b"u1", 0, 1))
            out += b"R"
            put((3, b"|", None, None, None, -1, -1, 0))
            out += b"b"
            put(False)
            put(value.array.tobytes())
            out += b"tb"
        else:
            raise TypeError(type(value))

    put(content)
    return bytes(out + b".")


def write_python2_cifar(folder, per_batch: int = 4) -> dict[str, tuple[np.ndarray, list[int]]]:
    """The official layout in the official byte format; returns {file: (images (N, 32, 32, 3), labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in CIFAR_FILES:
        images = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        labels = [int(label) for label in rng.integers(0, 10, per_batch)]
        rows = images.transpose(0, 3, 1, 2).reshape(per_batch, 3072)  # red, green, blue planes, row-major
        batch = {
            b"batch_label": f"{name} of 6".encode(),
            b"labels": labels,
            b"data": Python2Array(np.ascontiguousarray(rows)),
            b"filenames": [f"image_{i}.png".encode() for i in range(per_batch)],
        }
        (folder / name).write_bytes(python2_pickle(batch))
        batches[name] = (images, labels)
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [n.encode() for n in LABEL_NAMES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(python2_pickle(meta))
    return batches


def test_cifar_reads_the_python2_pickles_of_the_official_archive(tmp_path):
    batches = write_python2_cifar(tmp_path / "cifar-10-batches-py")
    no_augment = {"random_crop_padding": 0, "hflip": False}
    data = CIFAR10DataModule(tmp_path, num_workers=0, augment=no_augment, mean=(0.0,) * 3, std=(1.0,) * 3)
    assert data.classes == LABEL_NAMES
    data.setup()
    images, labels = batches["data_batch_2"]
    image, label = data.train_set[4 + 3]  # data_batch_2, fourth image
    torch.testing.assert_close(image, torch.tensor(images[3] / 255, dtype=torch.float32).permute(2, 0, 1))
    assert label == labels[3]
    assert [data.val_set[i][1] for i in range(4)] == batches["test_batch"][1]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_reads_batches_resaved_by_python3(tmp_path, protocol):
    """A user may re-save the batches; numpy 2 then pickles arrays through numpy._core, and at protocol 5
    through _frombuffer."""
    write_python2_cifar(tmp_path)
    for name in [*CIFAR_FILES, "batches.meta"]:
        with (tmp_path / name).open("rb") as file:
            content = pickle.load(file, encoding="bytes")
        (tmp_path / name).write_bytes(pickle.dumps(content, protocol=protocol))
    data = CIFAR10DataModule(tmp_path, num_workers=0)
    data.setup()
    assert len(data.train_set) == 20 and data.classes == LABEL_NAMES


class WritesAFile:
    """Unpickling this calls open(marker, "w"): code the pickle chose runs and leaves a file behind."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("name", ["batches.meta", "data_batch_3", "test_batch"])
@pytest.mark.parametrize("nested", [False, True], ids=["bare", "inside-a-valid-dict"])
def test_cifar_pickle_that_runs_code_is_refused_before_it_runs(tmp_path, name, nested):
    folder = tmp_path / "cifar-10-batches-py"
    write_python2_cifar(folder)
    # The payload is live: plain pickle runs it.
    pickle.loads(pickle.dumps(WritesAFile(tmp_path / "plain_pickle_ran")))
    assert (tmp_path / "plain_pickle_ran").exists()

    marker = tmp_path / "zoo_ran"
    with (folder / name).open("rb") as file:
        content = pickle.load(file, encoding="bytes")
    payload = {**content, b"labels": WritesAFile(marker)} if nested else WritesAFile(marker)
    (folder / name).write_bytes(pickle.dumps(payload, protocol=2))
    message = rf"{name} refers to the Python global io.open, which the CIFAR-10 format never holds"
    with pytest.raises(ValueError, match=message):
        CIFAR10DataModule(tmp_path, num_workers=0).setup()
    assert not marker.exists()


def test_cifar_refuses_any_global_outside_the_format(tmp_path):
    write_python2_cifar(tmp_path)
    (tmp_path / "batches.meta").write_bytes(b"\x80\x02cos\nsystem\nU\x04true\x85R.")  # os.system("true")
    with pytest.raises(ValueError, match=r"batches.meta refers to the Python global os.system"):
        CIFAR10DataModule(tmp_path)


# --- 2. COCO ----------------------------------------------------------------------------------------------------


def write_coco(root, annotations=None, sizes=None):
    """Images 1.jpg (60×40) and 2.png (50×50) and an instances JSON; returns (json path, image folder)."""
    sizes = sizes or {1: (60, 40), 2: (50, 50)}  # id: (width, height)
    (root / "images").mkdir(exist_ok=True)
    for image_id, size in sizes.items():
        Image.new("RGB", size, (200, 10, 10)).save(root / "images" / f"{image_id}.jpg")
    data = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": w, "height": h} for i, (w, h) in sizes.items()],
        "annotations": annotations or [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 10]}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    path = root / "instances.json"
    path.write_text(json.dumps(data))
    return path, root / "images"


def test_coco_corrupt_or_truncated_image_names_the_file(tmp_path):
    annotations, images = write_coco(tmp_path)
    jpeg = (images / "1.jpg").read_bytes()
    (images / "1.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (images / "2.jpg").write_text("not an image")
    data = CocoDetection(annotations, images, image_size=32)
    for index, name in enumerate(["1.jpg", "2.jpg"]):
        with pytest.raises(ValueError, match=rf"cannot decode image .*images/{name}: the file is corrupt, truncated"):
            data[index]


def test_coco_missing_files_are_file_not_found(tmp_path):
    annotations, images = write_coco(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"annotation file .*missing.json does not exist"):
        CocoDetection(tmp_path / "missing.json", images)
    with pytest.raises(FileNotFoundError, match=r"image folder .*nowhere does not exist"):
        CocoDetection(annotations, tmp_path / "nowhere")
    (images / "2.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"image file .*images/2.jpg does not exist"):
        CocoDetection(annotations, images)[1]


def edit(path, change) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps(change(data)))


def set_entry(section, index, **fields):
    def change(data):
        data[section][index].update(fields)
        return data

    return change


def drop_field(section, index, key):
    def change(data):
        del data[section][index][key]
        return data

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: [data], "should hold a JSON object with 'images', 'annotations' and 'categories', got a list"),
        (lambda data: {**data, "images": {}}, "needs a list under 'images', got dict"),
        (lambda data: {**data, "annotations": [7]}, r"annotations\[0\] should be a JSON object, got 7"),
        (drop_field("images", 1, "id"), r"images\[1\] has no 'id'; expected an int"),
        (set_entry("images", 0, id="1"), r"images\[0\] has id '1'; expected an int"),
        (drop_field("images", 0, "width"), r"images\[0\] has no 'width'; expected a positive int"),
        (set_entry("images", 1, height=0), r"images\[1\] has height 0; expected a positive int"),
        (set_entry("images", 1, file_name=None), r"images\[1\] has file_name None; expected a file name"),
        (set_entry("images", 1, id=1), r"images ids \[1\] occur more than once"),
        (set_entry("categories", 1, id=2.5), r"categories\[1\] has id 2.5; expected an int"),
        (
            set_entry("annotations", 0, bbox=["10", "5", "20", "10"]),
            r"annotations\[0\] \(id 1, image 1\) has bbox \['10', '5', '20', '10'\]; expected \[x, y, width, height\]",
        ),
        (set_entry("annotations", 0, bbox=[1, 2, 3]), r"annotations\[0\] .* has bbox \[1, 2, 3\]; expected"),
        (set_entry("annotations", 0, bbox=[1, 2, -3, 4]), r"width, height >= 0"),
        (drop_field("annotations", 0, "bbox"), r"annotations\[0\] \(id 1, image 1\) has no 'bbox'"),
        (set_entry("annotations", 0, image_id=9), r"annotations\[0\] \(id 1, image 9\) names unknown image 9"),
        (set_entry("annotations", 0, category_id=5), r"names unknown category 5; the file's categories are \[1, 2\]"),
    ],
)
def test_coco_malformed_json_names_the_file_the_entry_and_the_field(tmp_path, change, message):
    annotations, images = write_coco(tmp_path)
    edit(annotations, change)
    with pytest.raises(ValueError, match=message) as error:
        CocoDetection(annotations, images)
    assert str(annotations) in str(error.value)


def test_coco_invalid_json_is_named(tmp_path):
    annotations, images = write_coco(tmp_path)
    annotations.write_text('{"images": [')
    with pytest.raises(ValueError, match=r"instances.json is not valid JSON"):
        CocoDetection(annotations, images)


def test_coco_boxes_outside_the_image_are_clipped_as_torchvision_does_with_one_warning(tmp_path):
    xywh = [
        [10, 5, 20, 10],  # inside: unchanged
        [50, 30, 30, 30],  # past the right and bottom edges (the image is 60×40)
        [-5, -8, 15, 20],  # before the left and top edges
        [70, 10, 5, 5],  # wholly outside: no area left
        [60, 0, 4, 4],  # on the edge: no area left
    ]
    annotations = [{"id": i, "image_id": 1, "category_id": 2, "bbox": box} for i, box in enumerate(xywh, 1)]
    path, images = write_coco(tmp_path, annotations)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = CocoDetection(path, images, image_size=60)  # scale 1: boxes stay in the image's pixels
    messages = [str(w.message) for w in caught if "COCO" in str(w.message)]
    assert messages == [
        f"COCO: {path}: 4 of its 5 boxes reach outside their image and are clipped to it; "
        "2 of these have no area left inside the image and are dropped"
    ]
    # torchvision's truth: ops.clip_boxes_to_image, then the reference scripts' keep rule (x2 > x1, y2 > y1).
    boxes = torch.tensor(xywh, dtype=torch.float32)
    boxes[:, 2:] += boxes[:, :2]
    expected = clip_boxes_to_image(boxes, (40, 60))
    expected = expected[(expected[:, 2] > expected[:, 0]) & (expected[:, 3] > expected[:, 1])]
    _, target = data[0]
    torch.testing.assert_close(target["boxes"], expected)
    assert target["labels"].tolist() == [2, 2, 2]


def test_coco_boxes_inside_their_image_give_no_warning(tmp_path):
    path, images = write_coco(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CocoDetection(path, images)


def test_coco_image_whose_size_differs_from_the_json_is_an_error(tmp_path):
    path, images = write_coco(tmp_path)
    Image.new("RGB", (40, 60)).save(images / "1.jpg")  # rotated: the boxes would no longer fit it
    with pytest.raises(ValueError, match=r"images/1.jpg is 40×60 \(width × height\) but .* gives image 1 as 60×40"):
        CocoDetection(path, images)[0]


# --- 3. Normalisation statistics ----------------------------------------------------------------------------------


def write_image_folder(root):
    for split in ("train", "val"):
        (root / split / "cat").mkdir(parents=True)
        Image.new("RGB", (20, 20)).save(root / split / "cat" / "a.png")


@pytest.mark.parametrize(
    ("statistics", "message"),
    [
        ({"mean": (0.5, 0.5), "std": (0.2, 0.2)}, r"mean must have one value per channel: 3 .* got 2 in \(0.5, 0.5\)"),
        ({"mean": (0.5, 0.5)}, r"mean must have one value per channel: 3 for 3-channel images, got 2"),
        ({"std": (0.2,) * 4}, r"std must have one value per channel: 3 for 3-channel images, got 4"),
        ({"std": (0.2, 0.0, 0.2)}, r"std must be > 0 in every channel, got \(0.2, 0.0, 0.2\)"),
        ({"std": (0.2, -0.1, 0.2)}, r"std must be > 0 in every channel"),
        ({"std": (0.2, math.nan, 0.2)}, r"std must hold finite numbers"),
        ({"mean": (0.5, math.inf, 0.5)}, r"mean must hold finite numbers"),
        ({"mean": ("r", "g", "b")}, r"mean must hold finite numbers, got \('r', 'g', 'b'\)"),
        ({"mean": 0.5}, r"mean must be a sequence of 3 floats \(one per channel\), got 0.5"),
    ],
)
def test_image_folder_statistics_must_match_the_channels(tmp_path, statistics, message):
    write_image_folder(tmp_path)
    with pytest.raises(ValueError, match=message):
        ImageFolderDataModule(tmp_path, image_size=16, num_workers=0, **statistics)


def test_coco_and_voc_check_their_statistics_too(tmp_path):
    path, images = write_coco(tmp_path)
    with pytest.raises(ValueError, match="mean must have one value per channel: 3"):
        CocoDetection(path, images, mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="std must be > 0"):
        VOCSegmentation(tmp_path, std=(0.0, 0.1, 0.1))


# --- 4. VOC segmentation ------------------------------------------------------------------------------------------


def write_voc(root, image_size=(8, 4), mask_size=(8, 4)):
    """One id "a": JPEGImages/a.jpg of ``image_size`` and a palette mask of ``mask_size`` (width, height)."""
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    Image.new("RGB", image_size, (90, 30, 200)).save(root / "JPEGImages" / "a.jpg")
    Image.new("P", mask_size, 1).save(root / "SegmentationClass" / "a.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("a\n")


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("ImageSets/Segmentation/train.txt", r"split list .*ImageSets/Segmentation/train.txt does not exist"),
        ("JPEGImages/a.jpg", r"train.txt lists 'a' but .*JPEGImages/a.jpg does not exist"),
        ("SegmentationClass/a.png", r"train.txt lists 'a' but .*SegmentationClass/a.png does not exist"),
    ],
)
def test_voc_missing_files_are_file_not_found_naming_the_path(tmp_path, missing, message):
    write_voc(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(FileNotFoundError, match=message):
        VOCSegmentation(tmp_path, "train", image_size=8, num_classes=3)


def test_voc_file_removed_after_the_scan_is_file_not_found(tmp_path):
    write_voc(tmp_path)
    data = VOCSegmentation(tmp_path, "train", image_size=8, num_classes=3)
    (tmp_path / "SegmentationClass" / "a.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"image file .*SegmentationClass/a.png does not exist"):
        data[0]


def test_voc_mask_of_another_size_than_its_image_names_both(tmp_path):
    write_voc(tmp_path, image_size=(8, 5), mask_size=(8, 4))
    message = r"mask .*SegmentationClass/a.png is 8×4 \(width × height\) but its image .*JPEGImages/a.jpg is 8×5"
    with pytest.raises(ValueError, match=message):
        VOCSegmentation(tmp_path, "train", image_size=8, num_classes=3)[0]


def test_voc_corrupt_image_or_mask_names_the_file(tmp_path):
    write_voc(tmp_path)
    data = VOCSegmentation(tmp_path, "train", image_size=8, num_classes=3)
    mask = (tmp_path / "SegmentationClass" / "a.png").read_bytes()
    (tmp_path / "SegmentationClass" / "a.png").write_bytes(mask[: len(mask) // 2])
    with pytest.raises(ValueError, match=r"cannot decode image .*SegmentationClass/a.png: the file is corrupt"):
        data[0]
    (tmp_path / "JPEGImages" / "a.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(ValueError, match=r"cannot decode image .*JPEGImages/a.jpg: the file is corrupt"):
        data[0]


def test_voc_rgb_mask_is_refused(tmp_path):
    write_voc(tmp_path)
    Image.new("RGB", (8, 4)).save(tmp_path / "SegmentationClass" / "a.png")
    with pytest.raises(ValueError, match=r"mask .*a.png has mode RGB; expected P or L"):
        VOCSegmentation(tmp_path, "train", image_size=8, num_classes=3)[0]


@pytest.mark.parametrize("image_size", [0, 2.5, True])
def test_voc_and_coco_image_size_must_be_a_positive_int(tmp_path, image_size):
    write_voc(tmp_path)
    with pytest.raises(ValueError, match=rf"image_size must be an int >= 1, got {image_size}"):
        VOCSegmentation(tmp_path, image_size=image_size)
    path, images = write_coco(tmp_path)
    with pytest.raises(ValueError, match=rf"image_size must be an int >= 1, got {image_size}"):
        CocoDetection(path, images, image_size=image_size)
