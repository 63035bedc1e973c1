"""COCO-format detection data read from local files: an instances JSON and a folder of images.

    {"images": [{"id", "file_name", "width", "height"}, ...],
     "annotations": [{"id", "image_id", "category_id", "bbox": [x, y, w, h], "iscrowd"}, ...],
     "categories": [{"id", "name"}, ...]}

Boxes become xyxy; crowd annotations and zero-size boxes are left out of the training targets (as
torchvision's reference scripts do). A box reaching outside its image is clipped to the image, and one
left with no area is dropped, as torchvision's reference scripts and detectron2 do; unlike them, the
loader says so, in one warning per file with the counts. The image files must have the width and height
the JSON gives them, since the boxes are clipped to those (detectron2 checks this too).
Category ids, which need not be contiguous (COCO's run 1..90 with gaps), map to labels 1..C in sorted id
order, 0 being background; the validation split uses the training split's mapping.
Each image is scaled so that its longer side is ``image_size`` and padded at the right and bottom to a
square, so boxes scale by one factor and a batch stacks into one tensor.

With ``with_masks`` (instance segmentation: Mask R-CNN) a target also has ``"masks": UInt8Tensor[K, S, S]``, each
kept annotation's ``segmentation`` drawn at the image's size, then resized with the image (nearest-exact, as the
augmentation resizes masks) and padded with it. A segmentation is one of COCO's three forms, read without
pycocotools (as ``COCO.annToMask`` reads them, which the tests compare with):

* polygons ``[[x1, y1, x2, y2, ...], ...]``: the union of the polygons, a pixel (column j, row i) set when its
  centre (j + 0.5, i + 0.5) lies inside (even-odd rule). pycocotools digitises the outline on a 1/5-pixel grid
  instead, so the two differ only on pixels whose centre lies close to the outline (about 1 in 50 of a mask's);
  a polygon of fewer than three points has no inside (detectron2 drops those too);
* uncompressed RLE ``{"counts": [n0, n1, ...], "size": [h, w]}`` (COCO's crowds): runs of 0s and 1s, starting
  with 0s, down the columns (column-major order);
* compressed RLE ``{"counts": "<string>", "size": [h, w]}``: the same runs in pycocotools' text form. Each run
  is written as 5-bit groups, least significant first, one character (code − 48) each, bit 0x20 meaning "another
  group follows" and bit 0x10 of the last group the sign; from the fourth run on, the number written is the
  difference to the run two before.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from zoo.constants import IMAGENET_MEAN, IMAGENET_STD
from zoo.data.base import read_image
from zoo.data.detection import DetectionDataModule
from zoo.data.detection_transforms import DetectionAugment, resize_masks
from zoo.data.transforms import check_int, check_mean_std

__all__ = ["CocoDetection", "CocoDetectionDataModule", "read_coco_annotations", "segmentation_mask"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_size(value: object) -> bool:
    return _is_int(value) and value > 0


def _is_bbox(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        and value[2] >= 0
        and value[3] >= 0
    )


def _require(where: str, entry: dict, key: str, check: Callable[[object], bool], expected: str) -> None:
    if key not in entry:
        raise ValueError(f"{where} has no {key!r}; expected {expected}")
    if not check(entry[key]):
        raise ValueError(f"{where} has {key} {entry[key]!r}; expected {expected}")


def _entries(path: Path, data: dict, section: str) -> list[tuple[str, dict]]:
    """``(where, entry)`` for each entry of ``data[section]``, which must be a list of JSON objects."""
    entries = data.get(section)
    if not isinstance(entries, list):
        raise ValueError(f"COCO: {path} needs a list under {section!r}, got {type(entries).__name__}")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"COCO: {path}: {section}[{index}] should be a JSON object, got {entry!r}")
    return [(f"COCO: {path}: {section}[{index}]", entry) for index, entry in enumerate(entries)]


def _unique_ids(path: Path, section: str, entries: list[tuple[str, dict]]) -> set[int]:
    counts = Counter(entry["id"] for _, entry in entries)
    duplicates = sorted(i for i, count in counts.items() if count > 1)
    if duplicates:
        raise ValueError(f"COCO: {path}: {section} ids {duplicates} occur more than once")
    return set(counts)


def read_coco_annotations(path: str | Path) -> dict:
    """Load and check a COCO instances JSON: FileNotFoundError if it is missing, ValueError naming the file,
    the entry (``annotations[3]``) and the field expected otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO: annotation file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"COCO: {path} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"COCO: {path} should hold a JSON object with 'images', 'annotations' and 'categories', "
            f"got a {type(data).__name__}"
        )
    images, annotations, categories = (_entries(path, data, key) for key in ("images", "annotations", "categories"))
    for where, image in images:
        _require(where, image, "id", _is_int, "an int")
        _require(where, image, "file_name", lambda value: isinstance(value, str) and value != "", "a file name")
        for key in ("width", "height"):
            _require(where, image, key, _is_size, "a positive int (pixels)")
    for where, category in categories:
        _require(where, category, "id", _is_int, "an int")
    image_ids = _unique_ids(path, "images", images)
    category_ids = _unique_ids(path, "categories", categories)
    for where, annotation in annotations:
        where = f"{where} (id {annotation.get('id')}, image {annotation.get('image_id')})"
        if annotation.get("image_id") not in image_ids:
            raise ValueError(f"{where} names unknown image {annotation.get('image_id')!r}")
        if annotation.get("category_id") not in category_ids:
            raise ValueError(
                f"{where} names unknown category {annotation.get('category_id')!r}; "
                f"the file's categories are {sorted(category_ids)}"
            )
        _require(where, annotation, "bbox", _is_bbox, "[x, y, width, height]: 4 numbers with width, height >= 0")
    return data


# -------------------------------------------------------------------------------------------------- segmentations


def _is_polygons(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(polygon, list)
        and len(polygon) % 2 == 0
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in polygon)
        for polygon in value
    )


def _is_rle(value: object, height: int, width: int) -> bool:
    if not isinstance(value, dict) or value.get("size") != [height, width]:
        return False
    counts = value.get("counts")
    return isinstance(counts, str) or (isinstance(counts, list) and all(_is_int(c) and c >= 0 for c in counts))


def polygon_mask(polygon: list[float], height: int, width: int) -> Tensor:
    """uint8 ``[height, width]``: the pixels whose centre lies inside ``[x1, y1, x2, y2, ...]`` (even-odd rule).

    Each edge that crosses a row's centre line at x sets apart the pixels with centre left of x; a pixel is inside
    when an odd number of crossings lie right of its centre. An edge spans the half-open range of its ends' y, so a
    vertex on a centre line is crossed once."""
    points = torch.tensor(polygon, dtype=torch.float64).view(-1, 2)
    start, end = points, points.roll(-1, dims=0)
    centre_y = torch.arange(height, dtype=torch.float64) + 0.5
    crosses = (start[:, 1:] > centre_y) != (end[:, 1:] > centre_y)  # [edges, rows]
    edge, row = crosses.nonzero(as_tuple=True)
    fraction = (centre_y[row] - start[edge, 1]) / (end[edge, 1] - start[edge, 1])
    crossing_x = start[edge, 0] + fraction * (end[edge, 0] - start[edge, 0])
    left_of = torch.ceil(crossing_x - 0.5).clamp(0, width).long()  # pixels j with j + 0.5 < x
    counts = torch.zeros(height, width + 1, dtype=torch.long)
    counts.index_put_((row, left_of), torch.ones_like(row), accumulate=True)
    crossings_right = counts.flip(1).cumsum(1).flip(1)[:, 1:]  # [i, j]: crossings with left_of > j
    return (crossings_right % 2).to(torch.uint8)


def _string_counts(text: str) -> list[int]:
    """The runs of a compressed RLE string (module docstring)."""
    counts: list[int] = []
    value = shift = 0
    for char in text:
        code = ord(char) - 48
        value |= (code & 0x1F) << shift
        shift += 5
        if code & 0x20:
            continue  # another 5-bit group of this run follows
        if code & 0x10:
            value -= 1 << shift  # the sign bit: a negative difference
        counts.append(value + counts[-2] if len(counts) > 2 else value)
        value = shift = 0
    return counts


def _runs_mask(counts: list[int], height: int, width: int) -> Tensor | None:
    """uint8 ``[height, width]`` from column-major runs of 0s and 1s; None where they do not fill the image."""
    counts = torch.tensor(counts, dtype=torch.int64)
    if (counts < 0).any() or int(counts.sum()) != height * width:
        return None
    values = (torch.arange(len(counts)) % 2).to(torch.uint8)
    return torch.repeat_interleave(values, counts).view(width, height).T.contiguous()


def _check_segmentation(segmentation: object, height: int, width: int, where: str) -> None:
    """A ValueError naming ``where`` unless ``segmentation`` has one of COCO's forms (RLE runs are counted only
    when it is drawn)."""
    if not (_is_polygons(segmentation) or _is_rle(segmentation, height, width)):
        raise ValueError(
            f"{where}: expected a segmentation of polygons [[x1, y1, x2, y2, ...], ...] (an even count of numbers "
            f"each) or RLE {{'counts', 'size': [{height}, {width}]}} (the image's height and width), "
            f"got {str(segmentation):.80}"
        )


def segmentation_mask(segmentation: list | dict, height: int, width: int, where: str = "segmentation") -> Tensor:
    """uint8 ``[height, width]`` of a COCO ``segmentation``: polygons, uncompressed or compressed RLE (module
    docstring), as ``pycocotools.coco.COCO.annToMask``; a ValueError naming ``where`` when it is none of them or its
    runs do not fill the image."""
    _check_segmentation(segmentation, height, width, where)
    if isinstance(segmentation, list):
        mask = torch.zeros(height, width, dtype=torch.uint8)
        for polygon in segmentation:
            mask |= polygon_mask(polygon, height, width)
        return mask
    counts = segmentation["counts"]
    mask = _runs_mask(_string_counts(counts) if isinstance(counts, str) else counts, height, width)
    if mask is None:
        raise ValueError(f"{where}: RLE counts must be runs >= 0 adding up to {height} × {width} pixels")
    return mask


def _clip_boxes(path: Path, boxes: Tensor, sizes: Tensor) -> tuple[Tensor, Tensor]:
    """xyxy ``boxes`` (K, 4) clipped to their image's ``sizes`` (K, 2) as (width, height), and the mask of
    those with area left; warns once with the counts when any box reached outside its image."""
    limits = sizes.repeat(1, 2)
    clipped = torch.minimum(boxes.clamp(min=0), limits)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    outside = int((clipped != boxes).any(dim=1).sum())
    if outside:
        warnings.warn(
            f"COCO: {path}: {outside} of its {len(boxes)} boxes reach outside their image and are clipped to it; "
            f"{int((~keep).sum())} of these have no area left inside the image and are dropped",
            stacklevel=4,  # the code that builds the dataset
        )
    return clipped, keep


class CocoDetection(Dataset):
    """Images and xyxy targets of a COCO split, resized to ``image_size`` (longer side) and padded square;
    ``with_masks`` adds each object's mask (module docstring)."""

    def __init__(
        self,
        annotation_file: str | Path,
        image_dir: str | Path,
        image_size: int = 512,
        category_to_label: dict[int, int] | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        with_masks: bool = False,
    ) -> None:
        check_int("image_size", image_size, 1)
        if not isinstance(with_masks, bool):
            raise TypeError(f"with_masks must be true or false, got {with_masks!r}")
        self.with_masks = with_masks
        check_mean_std(mean, std, 3)
        self.annotation_file = Path(annotation_file)
        data = read_coco_annotations(self.annotation_file)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"COCO: image folder {self.image_dir} does not exist")
        self.image_size = image_size
        self.category_to_label = category_to_label or {
            category_id: label for label, category_id in enumerate(sorted(c["id"] for c in data["categories"]), 1)
        }
        self.images = sorted(data["images"], key=lambda image: image["id"])
        self.targets = self._targets(data)
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def _targets(self, data: dict) -> dict[int, tuple[Tensor, Tensor, list[dict]]]:
        """image id → (xyxy boxes in the image's pixels, labels, annotations), clipped to the image; the
        annotations, whose segmentations are checked here and drawn when the image is read, only ``with_masks``."""
        unknown = {a["category_id"] for a in data["annotations"]} - set(self.category_to_label)
        if unknown:
            raise ValueError(
                f"COCO: {self.annotation_file} uses categories {sorted(unknown)} that the training split lacks "
                f"(its categories are {sorted(self.category_to_label)})"
            )
        # Crowd regions and zero-size boxes are not training targets (torchvision's reference scripts too).
        kept = [a for a in data["annotations"] if not a.get("iscrowd", 0) and a["bbox"][2] > 0 and a["bbox"][3] > 0]
        sizes = {image["id"]: (image["width"], image["height"]) for image in self.images}
        boxes = torch.tensor([a["bbox"] for a in kept], dtype=torch.float64).view(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes, keep = _clip_boxes(
            self.annotation_file, boxes, torch.tensor([sizes[a["image_id"]] for a in kept]).view(-1, 2)
        )
        boxes = boxes.float()
        labels = torch.tensor([self.category_to_label[a["category_id"]] for a in kept], dtype=torch.int64)
        kept_rows = keep.nonzero()[:, 0].tolist()
        rows: dict[int, list[int]] = {i: [] for i in sizes}
        for row in kept_rows:
            rows[kept[row]["image_id"]].append(row)
        if self.with_masks:
            self._check_segmentations([kept[row] for row in kept_rows], sizes)
        indices = {i: torch.tensor(r, dtype=torch.int64) for i, r in rows.items()}
        return {
            i: (boxes[r], labels[r], [kept[row] for row in rows[i]] if self.with_masks else [])
            for i, r in indices.items()
        }

    def _where(self, annotation: dict) -> str:
        return f"COCO: {self.annotation_file}: annotation {annotation.get('id')} (image {annotation['image_id']})"

    def _check_segmentations(self, annotations: list[dict], sizes: dict[int, tuple[int, int]]) -> None:
        for annotation in annotations:
            width, height = sizes[annotation["image_id"]]
            where = self._where(annotation)
            if "segmentation" not in annotation:
                raise ValueError(f"{where} has no 'segmentation', which with_masks needs (polygons or RLE)")
            _check_segmentation(annotation["segmentation"], height, width, where)

    def __len__(self) -> int:
        return len(self.images)

    def _load(self, info: dict) -> Tensor:
        path = self.image_dir / info["file_name"]
        image = read_image(path, "COCO")
        if image.size != (info["width"], info["height"]):
            raise ValueError(
                f"COCO: image {path} is {image.size[0]}×{image.size[1]} (width × height) but "
                f"{self.annotation_file} gives image {info['id']} as {info['width']}×{info['height']}"
            )
        return pil_to_tensor(image.convert("RGB")).float() / 255

    def __getitem__(self, index: int) -> tuple[Tensor, dict]:
        info = self.images[index]
        image = self._load(info)
        height, width = image.shape[1:]
        scale = self.image_size / max(height, width)
        new_size = (max(1, round(height * scale)), max(1, round(width * scale)))
        image = F.interpolate(image[None], size=new_size, mode="bilinear", align_corners=False, antialias=True)[0]
        image = (image - self.mean) / self.std
        padding = (0, self.image_size - new_size[1], 0, self.image_size - new_size[0])
        image = F.pad(image, padding)
        boxes, labels, annotations = self.targets[info["id"]]
        boxes = boxes * torch.tensor([new_size[1] / width, new_size[0] / height] * 2)
        target = {"boxes": boxes, "labels": labels.clone(), "image_id": info["id"]}
        if self.with_masks:
            masks = [segmentation_mask(a["segmentation"], height, width, self._where(a)) for a in annotations]
            masks = torch.stack(masks) if masks else torch.zeros(0, height, width, dtype=torch.uint8)
            target["masks"] = F.pad(resize_masks(masks, new_size), padding)
        return image, target


class CocoDetectionDataModule(DetectionDataModule):
    """``data=coco``: train and val splits, each an instances JSON plus an image folder; ``with_masks`` adds the
    instance masks, ``augment`` augments the training split
    (:class:`~zoo.data.detection_transforms.DetectionAugment`)."""

    in_chans = 3

    def __init__(
        self,
        train_annotations: str,
        train_images: str,
        val_annotations: str,
        val_images: str,
        image_size: int = 512,
        batch_size: int = 8,
        num_workers: int = 2,
        seed: int = 0,
        augment: Mapping | None = None,
        with_masks: bool = False,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        check_int("data.image_size", image_size, 1)
        if not isinstance(with_masks, bool):
            raise TypeError(f"data.with_masks must be true or false, got {with_masks!r}")
        self.with_masks = with_masks
        self.augment = DetectionAugment.from_config(augment)
        self.paths = (train_annotations, train_images, val_annotations, val_images)
        self.image_size = image_size
        # num_classes must be known before the model is built: read the categories now.
        categories = read_coco_annotations(train_annotations)["categories"]
        self.category_to_label = {c: label for label, c in enumerate(sorted(c["id"] for c in categories), 1)}
        self.num_classes = len(self.category_to_label) + 1

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        train_annotations, train_images, val_annotations, val_images = self.paths
        options = {"category_to_label": self.category_to_label, "with_masks": self.with_masks}
        train = CocoDetection(train_annotations, train_images, self.image_size, **options)
        val = CocoDetection(val_annotations, val_images, self.image_size, **options)
        return train, val
