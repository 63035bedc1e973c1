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
from zoo.data.detection_transforms import DetectionAugment
from zoo.data.transforms import check_int, check_mean_std

__all__ = ["CocoDetection", "CocoDetectionDataModule", "read_coco_annotations"]


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
    """Images and xyxy targets of a COCO split, resized to ``image_size`` (longer side) and padded square."""

    def __init__(
        self,
        annotation_file: str | Path,
        image_dir: str | Path,
        image_size: int = 512,
        category_to_label: dict[int, int] | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        check_int("image_size", image_size, 1)
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

    def _targets(self, data: dict) -> dict[int, tuple[Tensor, Tensor]]:
        """image id → (xyxy boxes in the image's pixels, labels), clipped to the image."""
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
        rows: dict[int, list[int]] = {i: [] for i in sizes}
        for row in keep.nonzero()[:, 0].tolist():
            rows[kept[row]["image_id"]].append(row)
        indices = {i: torch.tensor(r, dtype=torch.int64) for i, r in rows.items()}
        return {i: (boxes[r], labels[r]) for i, r in indices.items()}

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
        image = F.pad(image, (0, self.image_size - new_size[1], 0, self.image_size - new_size[0]))
        boxes, labels = self.targets[info["id"]]
        boxes = boxes * torch.tensor([new_size[1] / width, new_size[0] / height] * 2)
        return image, {"boxes": boxes, "labels": labels.clone(), "image_id": info["id"]}


class CocoDetectionDataModule(DetectionDataModule):
    """``data=coco``: train and val splits, each an instances JSON plus an image folder; ``augment`` augments
    the training split (:class:`~zoo.data.detection_transforms.DetectionAugment`)."""

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
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
        check_int("data.image_size", image_size, 1)
        self.augment = DetectionAugment.from_config(augment)
        self.paths = (train_annotations, train_images, val_annotations, val_images)
        self.image_size = image_size
        # num_classes must be known before the model is built: read the categories now.
        categories = read_coco_annotations(train_annotations)["categories"]
        self.category_to_label = {c: label for label, c in enumerate(sorted(c["id"] for c in categories), 1)}
        self.num_classes = len(self.category_to_label) + 1

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        train_annotations, train_images, val_annotations, val_images = self.paths
        train = CocoDetection(train_annotations, train_images, self.image_size, self.category_to_label)
        val = CocoDetection(val_annotations, val_images, self.image_size, self.category_to_label)
        return train, val
