"""COCO-format detection data read from local files: an instances JSON and a folder of images.

    {"images": [{"id", "file_name", "width", "height"}, ...],
     "annotations": [{"id", "image_id", "category_id", "bbox": [x, y, w, h], "iscrowd"}, ...],
     "categories": [{"id", "name"}, ...]}

Boxes become xyxy; crowd annotations and zero-size boxes are left out of the training targets (as
torchvision's reference scripts do). Category ids, which need not be contiguous (COCO's run 1..90 with
gaps), map to labels 1..C in sorted id order, 0 being background; the validation split uses the training
split's mapping.
Each image is scaled so that its longer side is ``image_size`` and padded at the right and bottom to a
square, so boxes scale by one factor and a batch stacks into one tensor.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from zoo.constants import IMAGENET_MEAN, IMAGENET_STD
from zoo.data.detection import DetectionDataModule

__all__ = ["CocoDetection", "CocoDetectionDataModule", "read_coco_annotations"]


def read_coco_annotations(path: str | Path) -> dict:
    """Load and check a COCO instances JSON; ValueError naming the file and the problem otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"COCO: annotation file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"COCO: {path} is not valid JSON ({error})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"COCO: {path} needs a list under {key!r}")
    image_ids = {image["id"] for image in data["images"]}
    category_ids = {category["id"] for category in data["categories"]}
    for annotation in data["annotations"]:
        where = f"COCO: {path}: annotation {annotation.get('id')}"
        if annotation.get("image_id") not in image_ids:
            raise ValueError(f"{where} names unknown image {annotation.get('image_id')}")
        if annotation.get("category_id") not in category_ids:
            raise ValueError(f"{where} names unknown category {annotation.get('category_id')}")
        bbox = annotation.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and bbox[2] >= 0 and bbox[3] >= 0):
            raise ValueError(
                f"{where} of image {annotation['image_id']} has bbox {bbox!r}; "
                "expected [x, y, width, height] with width, height >= 0"
            )
    return data


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
        data = read_coco_annotations(annotation_file)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise ValueError(f"COCO: image folder {self.image_dir} does not exist")
        self.image_size = image_size
        self.category_to_label = category_to_label or {
            category_id: label for label, category_id in enumerate(sorted(c["id"] for c in data["categories"]), 1)
        }
        self.images = sorted(data["images"], key=lambda image: image["id"])
        self.annotations: dict[int, list[dict]] = {image["id"]: [] for image in self.images}
        for annotation in data["annotations"]:
            _, _, width, height = annotation["bbox"]
            # Crowd regions and zero-size boxes are not training targets (torchvision's reference scripts too).
            if not annotation.get("iscrowd", 0) and width > 0 and height > 0:
                self.annotations[annotation["image_id"]].append(annotation)
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def _load(self, info: dict) -> Tensor:
        path = self.image_dir / info["file_name"]
        if not path.is_file():
            raise ValueError(f"COCO: image {info['id']} ({path}) does not exist")
        with Image.open(path) as image:
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
        annotations = self.annotations[info["id"]]
        boxes = torch.tensor([a["bbox"] for a in annotations], dtype=torch.float32).view(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2] *= new_size[1] / width
        boxes[:, 1::2] *= new_size[0] / height
        labels = torch.tensor([self.category_to_label[a["category_id"]] for a in annotations], dtype=torch.int64)
        return image, {"boxes": boxes, "labels": labels, "image_id": info["id"]}


class CocoDetectionDataModule(DetectionDataModule):
    """``data=coco``: train and val splits, each an instances JSON plus an image folder."""

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
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, seed=seed)
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
        unknown = {a["category_id"] for anns in val.annotations.values() for a in anns} - set(self.category_to_label)
        if unknown:
            raise ValueError(f"COCO: {val_annotations} uses categories {sorted(unknown)} that the training split lacks")
        return train, val
