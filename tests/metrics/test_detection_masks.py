"""zoo.metrics' COCO mAP of instance masks (``iou_type="segm"``) against pycocotools' COCOeval(iouType="segm") and
torchmetrics' MeanAveragePrecision(iou_type="segm").

Random sets of overlapping elliptical instances on images of 150 × 170 pixels (not square, so a transposed mask
shows): small, medium and large ground truths of several classes, detections that are perturbed copies of them
(shifted, resized), duplicates, false positives, label noise, score ties across images, crowds, given areas, images
without ground truth or detections, more than 100 detections in an image. pycocotools sees the masks as RLE
(``pycocotools.mask.encode`` of the Fortran-ordered array), detections' areas as its own pixel counts and ground
truths' as the annotation's ``area``: their pixel counts unless given, as torchmetrics fills them in.
"""

import contextlib
import io
import warnings

import numpy as np
import pytest
import torch
from metrics.test_detection import STATS, _mean_defined, assert_stats
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import zoo.metrics.detection_inputs
from zoo.metrics import MeanAveragePrecision, mean_average_precision

KEYS = [*STATS, "map_per_class", "mar_100_per_class", "classes"]
HEIGHT, WIDTH = 150, 170

# Ground-truth radii (pixels) of small (area < 32²), medium and large (area > 96²) instances.
RADII = torch.tensor([[2.0, 10.0], [22.0, 40.0], [58.0, 75.0]])


def ellipses(centres, radii, angles):
    """bool [N, H, W]: the pixels whose centre lies inside each rotated ellipse."""
    ys, xs = torch.meshgrid(torch.arange(HEIGHT) + 0.5, torch.arange(WIDTH) + 0.5, indexing="ij")
    dx, dy = xs - centres[:, 0, None, None], ys - centres[:, 1, None, None]
    cos, sin = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    return (u / radii[:, 0, None, None]) ** 2 + (v / radii[:, 1, None, None]) ** 2 <= 1


def boxes_of(masks):
    """xyxy pixel-edge boxes around each mask (zeros for an empty one)."""
    boxes = torch.zeros(len(masks), 4)
    for index, mask in enumerate(masks):
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        if len(rows):
            boxes[index] = torch.tensor([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=torch.float32)
    return boxes


def random_set(seed, num_images=10, num_classes=4, crowd=False, crowded_image=False, given_area=False):
    """Detections around the ground truths; class ``num_classes - 1`` has no ground truth, class 2 no detection."""
    gen = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for image in range(num_images):
        count = int(torch.randint(1, 7, (1,), generator=gen)) if image % 5 else 0
        size = RADII[torch.randint(0, 3, (count,), generator=gen)]
        radii = size[:, :1] + torch.rand(count, 2, generator=gen) * (size[:, 1:] - size[:, :1])
        centres = torch.rand(count, 2, generator=gen) * torch.tensor([WIDTH, HEIGHT])
        angles = torch.rand(count, generator=gen) * 3.2
        gt_masks = ellipses(centres, radii, angles)
        gt_labels = torch.randint(0, num_classes - 1, (count,), generator=gen)
        target = {"boxes": boxes_of(gt_masks), "labels": gt_labels, "masks": gt_masks}
        if crowd:
            target["iscrowd"] = (torch.rand(count, generator=gen) < 0.25).long()
        if given_area:
            target["area"] = (gt_masks.flatten(1).sum(1) * (0.5 + torch.rand(count, generator=gen))).round()
        targets.append(target)

        source = torch.repeat_interleave(torch.arange(count), torch.randint(0, 3, (count,), generator=gen))
        shift = torch.randn(len(source), 2, generator=gen) * radii[source] * 0.2
        scale = 1 + torch.randn(len(source), 2, generator=gen) * 0.15
        masks = ellipses(centres[source] + shift, radii[source] * scale, angles[source])
        labels = gt_labels[source].clone()
        noisy = torch.rand(len(source), generator=gen) < 0.1
        labels[noisy] = torch.randint(0, num_classes, (int(noisy.sum()),), generator=gen)
        extra = int(torch.randint(0, 4, (1,), generator=gen)) + (110 if crowded_image and image == 1 else 0)
        false_pos = ellipses(
            torch.rand(extra, 2, generator=gen) * torch.tensor([WIDTH, HEIGHT]),
            2 + torch.rand(extra, 2, generator=gen) * 40,
            torch.rand(extra, generator=gen) * 3.2,
        )
        masks = torch.cat([masks, false_pos])
        labels = torch.cat([labels, torch.randint(0, num_classes, (extra,), generator=gen)])
        if crowded_image and image == 1:
            labels[-110:] = 0
        labels[labels == 2] = 1  # class 2: never predicted
        scores = (torch.rand(len(masks), generator=gen) * 10).round() / 10  # many ties, across images too
        preds.append({"boxes": boxes_of(masks), "scores": scores, "labels": labels, "masks": masks})
    return preds, targets


def _rle(mask):
    return mask_utils.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))


def cocoeval_segm(preds, targets, iou_thresholds=None, rec_thresholds=None, max_dets=None):
    """pycocotools' COCOeval(iouType="segm") on in-memory COCO objects, the masks as RLE."""
    images, annotations, categories = [], [], set()
    for image, target in enumerate(targets):
        images.append({"id": image + 1, "height": HEIGHT, "width": WIDTH})
        count = len(target["labels"])
        crowd = target.get("iscrowd", torch.zeros(count)).tolist()
        area = target.get("area", torch.zeros(count)).tolist()
        for mask, label, is_crowd, given in zip(target["masks"], target["labels"].tolist(), crowd, area, strict=True):
            rle = _rle(mask)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image + 1,
                    "category_id": label,
                    "segmentation": rle,
                    "bbox": mask_utils.toBbox(rle).tolist(),
                    "area": given if given > 0 else float(mask_utils.area(rle)),
                    "iscrowd": int(is_crowd),
                }
            )
            categories.add(label)
    detections = []
    for image, pred in enumerate(preds):
        for mask, score, label in zip(pred["masks"], pred["scores"].tolist(), pred["labels"].tolist(), strict=True):
            detections.append({"image_id": image + 1, "category_id": label, "segmentation": _rle(mask), "score": score})
            categories.add(label)
    ground_truth = COCO()
    ground_truth.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c} for c in sorted(categories)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth.createIndex()
        if detections:
            results = ground_truth.loadRes(detections)
        else:  # loadRes refuses an empty list: an empty result set, as it would build one
            results = COCO()
            results.dataset = {**ground_truth.dataset, "annotations": []}
            results.createIndex()
        evaluation = COCOeval(ground_truth, results, "segm")
        if iou_thresholds is not None:
            evaluation.params.iouThrs = np.asarray(iou_thresholds, dtype=np.float64)
        if rec_thresholds is not None:
            evaluation.params.recThrs = np.asarray(rec_thresholds, dtype=np.float64)
        if max_dets is not None:
            evaluation.params.maxDets = max_dets
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


# ------------------------------------------------------------------------------------------------- pycocotools

SETS = [
    {"seed": 0},
    {"seed": 1, "crowd": True},
    {"seed": 2, "crowded_image": True},
    {"seed": 3, "crowd": True, "given_area": True},
    {"seed": 4, "num_images": 16, "num_classes": 6},
    {"seed": 5, "crowd": True, "crowded_image": True},
]


@pytest.mark.parametrize("config", SETS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_mask_map_matches_pycocotools(config):
    preds, targets = random_set(**config)
    evaluation = cocoeval_segm(preds, targets)
    result = mean_average_precision(preds, targets, class_metrics=True, iou_type="segm")
    assert_stats(result, evaluation)
    # Not trivial: COCO's value lies strictly between 0 and 1, and every area range has ground truths (given areas,
    # up to half the pixel count, can leave no large one).
    assert 0.01 < evaluation.stats[0] < 0.99
    assert (evaluation.stats[3:6] > -1).sum() >= (2 if config.get("given_area") else 3)
    precision, recall = evaluation.eval["precision"], evaluation.eval["recall"]
    expected_map = [_mean_defined(precision[:, :, k, 0, -1]) for k in range(precision.shape[2])]
    expected_mar = [_mean_defined(recall[:, k, 0, -1]) for k in range(recall.shape[1])]
    np.testing.assert_allclose(result["map_per_class"].numpy(), expected_map, atol=1e-6)
    np.testing.assert_allclose(result["mar_100_per_class"].numpy(), expected_mar, atol=1e-6)
    assert result["classes"].tolist() == evaluation.params.catIds
    assert expected_map[-1] == -1.0  # the class without ground truth


def test_custom_thresholds_and_caps_match_pycocotools():
    preds, targets = random_set(2, crowded_image=True)
    iou, recall, caps = [0.3, 0.5, 0.75, 0.8], np.linspace(0, 1, 21).tolist(), [2, 5, 20]
    evaluation = cocoeval_segm(preds, targets, iou, recall, caps)
    result = mean_average_precision(preds, targets, iou, recall, caps, iou_type="segm")
    ours = np.array([float(value) for value in list(result.values())[:12]])
    np.testing.assert_allclose(ours, evaluation.stats, atol=1e-6)


def test_accumulator_over_batches_matches_pycocotools():
    preds, targets = random_set(3, num_images=12, crowd=True)
    metric = MeanAveragePrecision(class_metrics=True, iou_type="segm")
    metric.update(preds[:3], targets[:3])
    metric.reset()
    for start in range(0, 12, 5):
        metric.update(preds[start : start + 5], targets[start : start + 5])
    assert_stats(metric.compute(), cocoeval_segm(preds, targets))


def test_intersections_in_small_chunks_match_pycocotools(monkeypatch):
    # The shared pixels are counted a few detection masks at a time: the chunks must add up to the same counts.
    monkeypatch.setattr(zoo.metrics.detection_inputs, "_CHUNK_ELEMENTS", 5000)
    preds, targets = random_set(5, crowd=True, crowded_image=True)
    assert_stats(mean_average_precision(preds, targets, iou_type="segm"), cocoeval_segm(preds, targets))


def test_uint8_masks_without_boxes_match_pycocotools():
    # As torchmetrics' iou_type="segm": the masks are the shapes, boxes may be left out.
    preds, targets = random_set(1, num_images=6, crowd=True)
    evaluation = cocoeval_segm(preds, targets)
    preds = [{"masks": p["masks"].to(torch.uint8), "scores": p["scores"], "labels": p["labels"]} for p in preds]
    targets = [{key: value for key, value in t.items() if key != "boxes"} for t in targets]
    assert_stats(mean_average_precision(preds, targets, iou_type="segm"), evaluation)


# ------------------------------------------------------------------------------------------------ torchmetrics


def torchmetrics_segm(preds, targets, **kwargs):
    from torchmetrics.detection import MeanAveragePrecision as Reference  # backend: pycocotools

    metric = Reference(iou_type="segm", class_metrics=True, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "more than 100 detections in an image"
        metric.update(
            [{key: p[key] for key in ("masks", "scores", "labels")} for p in preds],
            [{key: value for key, value in t.items() if key != "boxes"} for t in targets],
        )
        return metric.compute()


def assert_same_as_torchmetrics(result, reference):
    # Where a side is empty torchmetrics' segm result leaves out the per-class values (its box result keeps them).
    assert list(result) == KEYS and set(reference) <= set(KEYS) and len(reference) >= 13
    for key in reference:
        assert result[key].dtype == reference[key].dtype, key
        torch.testing.assert_close(result[key].reshape(-1), reference[key].reshape(-1), atol=1e-6, rtol=0)


def test_matches_torchmetrics_with_pycocotools_thresholds():
    # torchmetrics' segm path drops the images without ground truth, detections and all, where pycocotools counts
    # those detections as false positives (zoo does as pycocotools, above): compared on images with ground truth.
    preds, targets = random_set(1, num_images=12, crowd=True, given_area=True)
    annotated = [index for index, target in enumerate(targets) if len(target["labels"])]
    preds, targets = [preds[i] for i in annotated], [targets[i] for i in annotated]
    thresholds = {
        "iou_thresholds": np.linspace(0.5, 0.95, 10).tolist(),
        "rec_thresholds": np.linspace(0, 1, 101).tolist(),
    }
    reference = torchmetrics_segm(preds, targets, **thresholds)
    assert_same_as_torchmetrics(mean_average_precision(preds, targets, class_metrics=True, iou_type="segm"), reference)


def _empty_pred():
    return {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.long),
        "masks": torch.zeros(0, HEIGHT, WIDTH, dtype=torch.bool),
    }


def _empty_target():
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "masks": _empty_pred()["masks"]}


# A small, a medium and a large instance of two classes.
MASKS = ellipses(torch.tensor([[10.0, 10.0], [60.0, 40.0], [110.0, 90.0]]), RADII[:, 1:].repeat(1, 2), torch.zeros(3))
LABELS = torch.tensor([1, 5, 1])


@pytest.mark.parametrize("case", ["empty images", "perfect", "no ground truth"])
def test_edge_cases_match_torchmetrics(case):
    pred = {"boxes": boxes_of(MASKS), "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": LABELS, "masks": MASKS}
    target = {"boxes": boxes_of(MASKS), "labels": LABELS, "masks": MASKS}
    preds, targets = {
        "empty images": ([_empty_pred()] * 2, [_empty_target()] * 2),
        "perfect": ([pred], [target]),
        "no ground truth": ([pred], [_empty_target()]),
    }[case]
    recall = torch.linspace(0.0, 1.0, 101).tolist()  # torchmetrics' default
    result = mean_average_precision(preds, targets, rec_thresholds=recall, class_metrics=True, iou_type="segm")
    assert_same_as_torchmetrics(result, torchmetrics_segm(preds, targets))


def test_no_predictions_match_pycocotools():
    # torchmetrics' segm result is -1 here (its box result 0); COCOeval's is 0: the ground truths are all missed.
    preds, targets = [_empty_pred(), _empty_pred()], [{"labels": LABELS, "masks": MASKS}, _empty_target()]
    evaluation = cocoeval_segm(preds, targets)
    assert (evaluation.stats == 0).all()
    assert_stats(mean_average_precision(preds, targets, iou_type="segm"), evaluation)


def test_perfect_masks_give_one_in_every_area_range():
    small, medium, large = MASKS.flatten(1).sum(1).tolist()
    assert small < 32**2 < medium < 96**2 < large
    pred = {"scores": torch.tensor([0.9, 0.8, 0.7]), "labels": LABELS, "masks": MASKS}
    result = mean_average_precision([pred], [{"labels": LABELS, "masks": MASKS}], iou_type="segm")
    for key in STATS:
        assert float(result[key]) == (0.75 if key == "mar_1" else 1.0), key  # one detection per class: 1/2 and 1


# --------------------------------------------------------------------------------------------------- input checks


def _one_image(**changes):
    pred = {"boxes": boxes_of(MASKS), "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": LABELS, "masks": MASKS}
    target = {"boxes": boxes_of(MASKS), "labels": LABELS, "masks": MASKS}
    for key, value in changes.items():
        role, field = key.split("_", 1)
        record = pred if role == "pred" else target
        if value is None:
            del record[field]
        else:
            record[field] = value
    return [_empty_pred(), pred], [_empty_target(), target]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"pred_masks": None}, ValueError, r"preds\[1\]: missing key\(s\) \['masks'\]"),
        ({"target_masks": None}, ValueError, r"targets\[1\]: missing key\(s\) \['masks'\]"),
        ({"pred_masks": MASKS[:2]}, ValueError, r"preds\[1\]\['masks'\]: expected 3 masks \(one per box\), got 2"),
        ({"target_masks": MASKS[:2], "target_boxes": None}, ValueError, r"targets\[1\]\['labels'\].*shape \[2\]"),
        ({"pred_masks": MASKS.float()}, TypeError, r"preds\[1\]\['masks'\]: expected a bool or uint8.*float32"),
        ({"target_masks": MASKS[0]}, ValueError, r"targets\[1\]\['masks'\]: expected shape \[3, H, W\].*\[150, 170\]"),
        ({"target_masks": MASKS.to(torch.uint8) * 255}, ValueError, r"targets\[1\]\['masks'\].*0/1.*255"),
        ({"pred_masks": MASKS.tolist()}, TypeError, r"preds\[1\]\['masks'\].*Tensor.*list"),
    ],
)
def test_bad_mask_input_raises(changes, error, message):
    preds, targets = _one_image(**changes)
    with pytest.raises(error, match=message):
        mean_average_precision(preds, targets, iou_type="segm")
    metric = MeanAveragePrecision(iou_type="segm")
    with pytest.raises(error, match=message):
        metric.update(preds, targets)


def test_mask_sizes_of_an_image_must_agree():
    preds, targets = _one_image(pred_masks=MASKS[:, :, :100])
    with pytest.raises(ValueError, match=r"preds\[1\]\['masks'\] and targets\[1\]\['masks'\].*150×100 and 150×170"):
        mean_average_precision(preds, targets, iou_type="segm")


def test_unknown_iou_type_is_refused():
    preds, targets = _one_image()
    with pytest.raises(ValueError, match=r"iou_type: expected 'bbox' .* or 'segm' .*, got 'mask'"):
        mean_average_precision(preds, targets, iou_type="mask")
    with pytest.raises(ValueError, match="iou_type"):
        MeanAveragePrecision(iou_type="masks")
