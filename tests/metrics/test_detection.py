"""zoo.metrics' coco and voc against pycocotools' COCOeval, torchmetrics' MeanAveragePrecision and the VOC devkit rule.

COCO: the twelve ``COCOeval.stats`` and the per-class values from ``eval["precision"]`` / ``eval["recall"]``, on random
detection sets (jittered copies of the ground truths, duplicates, false positives, label noise, score ties across
images, images without ground truth, a class never predicted, a class never annotated, crowds, more than 100
detections in an image). Box corners sit on a quarter-pixel grid, so both sides compute the same IoU bit for bit.
VOC: hand-computed examples and the devkit's rule written out as plain loops.
"""

import contextlib
import io
import warnings

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from zoo.metrics import MeanAveragePrecision, mean_average_precision, voc_average_precision, voc_map

STATS = [
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
]
KEYS = [*STATS, "map_per_class", "mar_100_per_class", "classes"]


def _grid(values):
    return (values * 4).round() / 4  # quarter pixels: every coordinate, width and area is exact in float32


def random_set(seed, num_images=12, num_classes=4, crowd=False, crowded_image=False, given_area=False):
    """Detections around the ground truths; class ``num_classes - 1`` has no ground truth, class 2 no detection."""
    gen = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for image in range(num_images):
        count = int(torch.randint(1, 7, (1,), generator=gen)) if image % 5 else 0
        size = torch.tensor([8.0, 40.0, 120.0])[torch.randint(0, 3, (count,), generator=gen)]
        wh = _grid(size[:, None] * (0.5 + torch.rand(count, 2, generator=gen)))
        xy = _grid(torch.rand(count, 2, generator=gen) * 300)
        gt_boxes = torch.cat([xy, xy + wh], 1)
        gt_labels = torch.randint(0, num_classes - 1, (count,), generator=gen)
        target = {"boxes": gt_boxes, "labels": gt_labels}
        if crowd:
            target["iscrowd"] = (torch.rand(count, generator=gen) < 0.2).long()
        if given_area:
            target["area"] = _grid(wh.prod(1) * (0.5 + torch.rand(count, generator=gen)))
        targets.append(target)

        source = torch.repeat_interleave(torch.arange(count), torch.randint(0, 3, (count,), generator=gen))
        jitter = _grid(torch.randn(len(source), 4, generator=gen) * wh[source].repeat(1, 2) * 0.15)
        boxes = gt_boxes[source] + jitter
        labels = gt_labels[source].clone()
        noisy = torch.rand(len(source), generator=gen) < 0.1
        labels[noisy] = torch.randint(0, num_classes, (int(noisy.sum()),), generator=gen)
        extra = int(torch.randint(0, 4, (1,), generator=gen)) + (110 if crowded_image and image == 1 else 0)
        corner = _grid(torch.rand(extra, 2, generator=gen) * 300)
        false_pos = torch.cat([corner, corner + _grid(torch.rand(extra, 2, generator=gen) * 100) + 1], 1)
        boxes = torch.cat([boxes, false_pos], 0)
        boxes = torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        labels = torch.cat([labels, torch.randint(0, num_classes, (extra,), generator=gen)])
        if crowded_image and image == 1:
            labels[-110:] = 0
        labels[labels == 2] = 1  # class 2: never predicted
        scores = (torch.rand(len(boxes), generator=gen) * 10).round() / 10  # many ties, across images too
        preds.append({"boxes": boxes, "scores": scores, "labels": labels})
    return preds, targets


def cocoeval(preds, targets, iou_thresholds=None, rec_thresholds=None, max_dets=None):
    """pycocotools' COCOeval on in-memory COCO objects (boxes as xywh, areas w*h unless given)."""
    images, annotations, categories = [], [], set()
    for image, target in enumerate(targets):
        images.append({"id": image + 1})
        count = len(target["labels"])
        crowd = target.get("iscrowd", torch.zeros(count)).tolist()
        area = target.get("area", torch.zeros(count)).tolist()
        for box, label, is_crowd, given in zip(
            target["boxes"].tolist(), target["labels"].tolist(), crowd, area, strict=True
        ):
            width, height = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image + 1,
                    "category_id": label,
                    "bbox": [box[0], box[1], width, height],
                    "area": given if given > 0 else width * height,
                    "iscrowd": int(is_crowd),
                }
            )
            categories.add(label)
    detections = []
    for image, pred in enumerate(preds):
        for box, score, label in zip(
            pred["boxes"].tolist(), pred["scores"].tolist(), pred["labels"].tolist(), strict=True
        ):
            bbox = [box[0], box[1], box[2] - box[0], box[3] - box[1]]
            detections.append({"image_id": image + 1, "category_id": label, "bbox": bbox, "score": score})
            categories.add(label)
    ground_truth = COCO()
    ground_truth.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c} for c in sorted(categories)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth.createIndex()
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(detections), "bbox")
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


def _mean_defined(values):
    return float(values[values > -1].mean()) if (values > -1).any() else -1.0


def assert_stats(result, evaluation):
    ours = np.array([float(result[key]) for key in STATS])
    np.testing.assert_allclose(ours, evaluation.stats, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------- COCO: pycocotools

SETS = [
    {"seed": 0},
    {"seed": 1, "crowd": True},
    {"seed": 2, "crowded_image": True},
    {"seed": 3, "crowd": True, "given_area": True},
    {"seed": 4, "num_images": 24, "num_classes": 6},
    {"seed": 5, "crowd": True, "crowded_image": True},
]


@pytest.mark.parametrize("config", SETS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_matches_pycocotools(config):
    preds, targets = random_set(**config)
    evaluation = cocoeval(preds, targets)
    result = mean_average_precision(preds, targets, class_metrics=True)
    assert_stats(result, evaluation)
    # The sets are not trivial: COCO's values lie strictly between 0 and 1.
    assert 0.01 < evaluation.stats[0] < 0.99
    # Per class, from COCOeval's precision [T, R, K, A, M] and recall [T, K, A, M] arrays.
    precision, recall = evaluation.eval["precision"], evaluation.eval["recall"]
    expected_map = [_mean_defined(precision[:, :, k, 0, -1]) for k in range(precision.shape[2])]
    expected_mar = [_mean_defined(recall[:, k, 0, -1]) for k in range(recall.shape[1])]
    np.testing.assert_allclose(result["map_per_class"].numpy(), expected_map, atol=1e-6)
    np.testing.assert_allclose(result["mar_100_per_class"].numpy(), expected_mar, atol=1e-6)
    assert result["classes"].tolist() == evaluation.params.catIds
    assert expected_map[-1] == -1.0  # the class without ground truth


@pytest.mark.parametrize("caps", [[2, 5, 20], [5, 100, 300]])
def test_custom_thresholds_and_caps_match_pycocotools(caps):
    preds, targets = random_set(2, crowded_image=True)
    iou, recall = [0.3, 0.5, 0.75, 0.8], np.linspace(0, 1, 21).tolist()
    evaluation = cocoeval(preds, targets, iou, recall, caps)
    result = mean_average_precision(preds, targets, iou, recall, caps)
    assert list(result)[6:9] == [f"mar_{cap}" for cap in caps]
    ours = np.array([float(value) for value in list(result.values())[:12]])
    np.testing.assert_allclose(ours, evaluation.stats, atol=1e-6)
    # COCOeval (and so torchmetrics) reads "map" at a cap of 100 only.
    assert (evaluation.stats[0] == -1) == (100 not in caps)


def test_accumulator_matches_pycocotools_over_batches():
    preds, targets = random_set(3, num_images=12, crowd=True)
    metric = MeanAveragePrecision(class_metrics=True)
    metric.update(preds[:3], targets[:3])
    metric.reset()
    for start in range(0, 12, 5):
        metric.update(preds[start : start + 5], targets[start : start + 5])
    assert_stats(metric.compute(), cocoeval(preds, targets))


# ------------------------------------------------------------------------------------------------ COCO: torchmetrics


def torchmetrics_map(preds, targets, **kwargs):
    from torchmetrics.detection import MeanAveragePrecision as Reference  # backend: pycocotools

    metric = Reference(class_metrics=True, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "more than 100 detections in an image"
        metric.update(preds, targets)
        return metric.compute()


def assert_same_as_torchmetrics(result, reference):
    assert list(result) == list(reference) == KEYS
    for key in KEYS:
        # torchmetrics squeezes one-element vectors to 0-d; we keep the per-class vectors 1-D.
        assert result[key].dtype == reference[key].dtype, key
        torch.testing.assert_close(result[key].reshape(-1), reference[key].reshape(-1), atol=1e-6, rtol=0)


def test_matches_torchmetrics_with_pycocotools_thresholds():
    preds, targets = random_set(1, num_images=8, crowd=True)
    thresholds = {
        "iou_thresholds": np.linspace(0.5, 0.95, 10).tolist(),
        "rec_thresholds": np.linspace(0, 1, 101).tolist(),
    }
    reference = torchmetrics_map(preds, targets, **thresholds)
    assert_same_as_torchmetrics(mean_average_precision(preds, targets, class_metrics=True), reference)


def test_matches_torchmetrics_defaults_given_its_thresholds():
    # torchmetrics' default thresholds are float32 roundings (0.55 -> 0.550000011920929), which moves recall values
    # sitting exactly on a threshold; given the same thresholds we agree with it exactly.
    preds, targets = random_set(0, num_images=8)
    thresholds = {
        "iou_thresholds": torch.linspace(0.5, 0.95, 10).tolist(),
        "rec_thresholds": torch.linspace(0.0, 1.0, 101).tolist(),
    }
    result = mean_average_precision(preds, targets, class_metrics=True, **thresholds)
    assert_same_as_torchmetrics(result, torchmetrics_map(preds, targets))


def test_map_50_is_minus_one_without_that_threshold_as_torchmetrics():
    preds, targets = random_set(4, num_images=8)
    recall = torch.linspace(0.0, 1.0, 101).tolist()  # torchmetrics' default
    result = mean_average_precision(preds, targets, [0.6, 0.7], recall, class_metrics=True)
    reference = torchmetrics_map(preds, targets, iou_thresholds=[0.6, 0.7])
    assert_same_as_torchmetrics(result, reference)
    assert result["map_50"] == result["map_75"] == -1


# ------------------------------------------------------------------------------------------------ COCO: edge cases


def _empty_pred():
    return {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}


def _empty_target():
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}


@pytest.mark.parametrize("num_images", [0, 3])
def test_nothing_at_all_gives_minus_one(num_images):
    result = mean_average_precision([_empty_pred()] * num_images, [_empty_target()] * num_images)
    assert list(result) == KEYS
    assert all(float(result[key]) == -1 for key in KEYS[:-1])
    assert result["classes"].shape == (0,) and result["classes"].dtype == torch.int32
    with_classes = mean_average_precision([], [], class_metrics=True)
    assert with_classes["map_per_class"].shape == with_classes["mar_100_per_class"].shape == (0,)


# A small (16 x 16), a medium (50 x 50) and a large (120 x 120) box of two classes.
BOXES = torch.tensor([[0.0, 0.0, 16.0, 16.0], [100.0, 100.0, 150.0, 150.0], [200.0, 0.0, 320.0, 120.0]])
LABELS = torch.tensor([1, 5, 1])


def test_perfect_predictions_give_one():
    preds = [{"boxes": BOXES, "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": LABELS}]
    result = mean_average_precision(preds, [{"boxes": BOXES, "labels": LABELS}], class_metrics=True)
    for key in KEYS[:-1]:
        expected = 0.75 if key == "mar_1" else 1.0  # one detection per image and class: recall 1/2 and 1
        torch.testing.assert_close(result[key], torch.full_like(result[key], expected))
    assert result["classes"].tolist() == [1, 5]


def test_no_predictions_give_zero():
    result = mean_average_precision([_empty_pred()], [{"boxes": BOXES, "labels": LABELS}], class_metrics=True)
    assert all(float(value) == 0 for value in torch.cat([result[key].reshape(-1) for key in KEYS[:-1]]))


def test_predictions_without_ground_truth_give_minus_one():
    preds = [{"boxes": BOXES, "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": LABELS}]
    result = mean_average_precision(preds, [_empty_target()], class_metrics=True)
    assert all(float(value) == -1 for value in torch.cat([result[key].reshape(-1) for key in KEYS[:-1]]))


@pytest.mark.parametrize("case", ["empty images", "perfect", "no predictions", "no ground truth"])
def test_edge_cases_match_torchmetrics(case):
    pred = {"boxes": BOXES, "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": LABELS}
    target = {"boxes": BOXES, "labels": LABELS}
    preds, targets = {
        "empty images": ([_empty_pred()] * 2, [_empty_target()] * 2),
        "perfect": ([pred], [target]),
        "no predictions": ([_empty_pred()], [target]),
        "no ground truth": ([pred], [_empty_target()]),
    }[case]
    recall = torch.linspace(0.0, 1.0, 101).tolist()
    result = mean_average_precision(preds, targets, rec_thresholds=recall, class_metrics=True)
    assert_same_as_torchmetrics(result, torchmetrics_map(preds, targets))


def test_integer_boxes_and_flat_empty_tensors_are_accepted():
    preds = [{"boxes": BOXES.long(), "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": LABELS.int()}]
    empty = {"boxes": torch.zeros(0), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    result = mean_average_precision([*preds, empty], [{"boxes": BOXES, "labels": LABELS}, _empty_target()])
    assert float(result["map"]) == 1.0


# --------------------------------------------------------------------------------------------------- input checks


def _one_image(**changes):
    pred = {"boxes": BOXES.clone(), "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": LABELS.clone()}
    target = {"boxes": BOXES.clone(), "labels": LABELS.clone()}
    for key, value in changes.items():
        role, field = key.split("_", 1)
        (pred if role == "pred" else target)[field] = value
    return [_empty_pred(), pred], [_empty_target(), target]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"pred_scores": torch.tensor([0.9, float("nan"), 0.7])}, ValueError, r"preds\[1\]\['scores'\].*image 1"),
        ({"pred_scores": torch.tensor([0.9, 0.8])}, ValueError, r"preds\[1\]\['scores'\].*shape \[3\]"),
        ({"pred_labels": torch.tensor([1.0, 5.0, 1.0])}, TypeError, r"preds\[1\]\['labels'\].*integer"),
        ({"pred_boxes": torch.zeros(3, 5)}, ValueError, r"preds\[1\]\['boxes'\].*\[N, 4\]"),
        ({"target_boxes": BOXES[:, [2, 1, 0, 3]]}, ValueError, r"targets\[1\]\['boxes'\].*x2 >= x1"),
        ({"target_labels": torch.tensor([1, 5])}, ValueError, r"targets\[1\]\['labels'\].*shape \[3\]"),
        ({"target_iscrowd": torch.tensor([0, 1])}, ValueError, r"targets\[1\]\['iscrowd'\]"),
        ({"target_boxes": BOXES.tolist()}, TypeError, r"targets\[1\]\['boxes'\].*Tensor"),
    ],
)
def test_bad_input_raises(changes, error, message):
    preds, targets = _one_image(**changes)
    with pytest.raises(error, match=message):
        mean_average_precision(preds, targets)
    with pytest.raises(error, match=message):
        voc_map(preds, targets)


def test_bad_structure_raises():
    preds, targets = _one_image()
    with pytest.raises(ValueError, match="2 and 1"):
        mean_average_precision(preds, targets[:1])
    with pytest.raises(TypeError, match="list"):
        mean_average_precision(preds[1], targets[1])
    with pytest.raises(ValueError, match=r"preds\[0\].*scores"):
        mean_average_precision([{"boxes": BOXES, "labels": LABELS}], targets[:1])
    with pytest.raises(ValueError, match="iou_thresholds"):
        mean_average_precision(preds, targets, iou_thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="max_detection_thresholds"):
        MeanAveragePrecision(max_detection_thresholds=[1, 10])
    with pytest.raises(TypeError, match="class_metrics"):
        MeanAveragePrecision(class_metrics="yes")
    with pytest.raises(ValueError, match="iou_threshold"):
        voc_map(preds, targets, iou_threshold=0.0)


# ------------------------------------------------------------------------------------------------------------ VOC


def devkit_voc_ap(recall, precision, use_07_metric):
    """The devkit's AP, written out (VOCdevkit VOCevaldet.m / voc_eval.py's voc_ap)."""
    if use_07_metric:  # mean over t = 0, 0.1, ..., 1 of the best precision at recall >= t (0 if none)
        return (
            sum(max([p for r, p in zip(recall, precision, strict=True) if r >= t / 10], default=0.0) for t in range(11))
            / 11
        )
    levels, values = [0.0, *recall, 1.0], [0.0, *precision, 0.0]
    for i in range(len(values) - 2, -1, -1):  # precision envelope: best precision at this recall or beyond
        values[i] = max(values[i], values[i + 1])
    return sum(
        (levels[i + 1] - levels[i]) * values[i + 1] for i in range(len(levels) - 1) if levels[i + 1] != levels[i]
    )


def _iou(a, b):
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def devkit_voc_map(preds, targets, iou_threshold=0.5, use_07_metric=False):
    """PASCAL VOC per-class AP, the devkit's loop: detections by decreasing score (stable); each looks at the ground
    truth of its image and class it overlaps most (the first on ties, claimed or not); IoU >= threshold: difficult ->
    ignored, unclaimed -> TP (and claimed), claimed -> FP; otherwise FP. Recall over the non-difficult count."""
    classes = sorted({c for d in [*preds, *targets] for c in d["labels"].tolist()})
    result = {}
    for c in classes:
        truths = {}
        for image, target in enumerate(targets):
            difficult = target.get("difficult", torch.zeros(len(target["labels"]))).tolist()
            for box, label, hard in zip(target["boxes"].tolist(), target["labels"].tolist(), difficult, strict=True):
                if label == c:
                    truths.setdefault(image, []).append({"box": box, "difficult": bool(hard), "claimed": False})
        positives = sum(not t["difficult"] for ts in truths.values() for t in ts)
        detections = [
            (score, image, box)
            for image, pred in enumerate(preds)
            for box, score, label in zip(
                pred["boxes"].tolist(), pred["scores"].tolist(), pred["labels"].tolist(), strict=True
            )
            if label == c
        ]
        detections.sort(key=lambda d: -d[0])
        tp = fp = 0
        recall, precision = [], []
        for _, image, box in detections:
            best, best_iou = None, -1.0
            for truth in truths.get(image, []):
                overlap = _iou(box, truth["box"])
                if overlap > best_iou:
                    best, best_iou = truth, overlap
            if best is not None and best_iou >= iou_threshold:
                if best["difficult"]:
                    pass
                elif not best["claimed"]:
                    best["claimed"], tp = True, tp + 1
                else:
                    fp += 1
            else:
                fp += 1
            if positives:
                recall.append(tp / positives)
                precision.append(tp / max(tp + fp, np.finfo(np.float64).eps))
        result[c] = devkit_voc_ap(recall, precision, use_07_metric) if positives else -1.0
    return result


def test_voc_average_precision_by_hand():
    recall, precision = torch.tensor([0.5, 0.5, 1.0]), torch.tensor([1.0, 0.5, 2 / 3])
    # Envelope 1 up to recall 0.5, then 2/3 up to 1: 0.5 * 1 + 0.5 * 2/3.
    torch.testing.assert_close(voc_average_precision(recall, precision), torch.tensor(5 / 6))
    # 11 points: t = 0 ... 0.5 see precision 1, t = 0.6 ... 1 see 2/3.
    torch.testing.assert_close(voc_average_precision(recall, precision, use_07_metric=True), torch.tensor(28 / 33))
    empty = torch.zeros(0, dtype=torch.float64)
    assert voc_average_precision(empty, empty) == 0 and voc_average_precision(empty, empty, True) == 0
    assert voc_average_precision(recall.double(), precision.double()).dtype == torch.float64


@pytest.mark.parametrize("use_07_metric", [False, True])
def test_voc_average_precision_matches_devkit_on_random_curves(use_07_metric):
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        hits = torch.rand(15, generator=gen) < 0.5
        tp, fp = hits.double().cumsum(0), (~hits).double().cumsum(0)
        recall, precision = tp / 15, tp / (tp + fp)  # 15 positives: up to 15 hits, recall never above 1
        expected = devkit_voc_ap(recall.tolist(), precision.tolist(), use_07_metric)
        assert abs(float(voc_average_precision(recall, precision, use_07_metric)) - expected) < 1e-12


def test_voc_map_by_hand():
    # Class 0 -- image 0: A [0,0,10,10], B [20,0,30,10] (difficult), C [40,0,50,10]; image 1: D [0,0,10,10].
    # Ranked detections: on A (IoU 1) TP; again on A: FP (A claimed); on B: ignored (difficult); nowhere in image 1:
    # FP; [0,0,10,20] in image 1 (IoU with D exactly 0.5): TP; on C: TP. Three positives.
    # recall 1/3, 1/3, (1/3), 1/3, 2/3, 1; precision 1, 1/2, (1/2), 1/3, 1/2, 3/5.
    # All-point: 1/3 * 1 + 1/3 * 3/5 + 1/3 * 3/5 = 11/15. 11-point: t <= 0.3 -> 1 (4 points), t >= 0.4 -> 3/5 (7).
    # Class 1: a detection, no ground truth -> undefined (-1). Class 2: a ground truth, no detection -> 0.
    targets = [
        {
            "boxes": torch.tensor([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10.0]]),
            "labels": torch.tensor([0, 0, 0]),
            "difficult": torch.tensor([False, True, False]),
        },
        {"boxes": torch.tensor([[0, 0, 10, 10], [60, 60, 70, 70.0]]), "labels": torch.tensor([0, 2])},
    ]
    preds = [
        {
            "boxes": torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10], [40, 0, 50, 10], [5, 5, 9, 9.0]]),
            "scores": torch.tensor([0.9, 0.8, 0.7, 0.4, 0.3]),
            "labels": torch.tensor([0, 0, 0, 0, 1]),
        },
        {
            "boxes": torch.tensor([[50, 50, 60, 60], [0, 0, 10, 20.0]]),
            "scores": torch.tensor([0.6, 0.5]),
            "labels": torch.tensor([0, 0]),
        },
    ]
    result = voc_map(preds, targets)
    assert result["classes"].tolist() == [0, 1, 2]
    torch.testing.assert_close(result["map_per_class"], torch.tensor([11 / 15, -1.0, 0.0]))
    torch.testing.assert_close(result["map"], torch.tensor(11 / 30))
    result = voc_map(preds, targets, use_07_metric=True)
    torch.testing.assert_close(result["map_per_class"], torch.tensor([(4 + 7 * 0.6) / 11, -1.0, 0.0]))
    assert voc_map([], [])["map"] == -1


@pytest.mark.parametrize("use_07_metric", [False, True])
def test_voc_map_matches_devkit_loop(use_07_metric):
    preds, targets = random_set(6, num_images=20)
    gen = torch.Generator().manual_seed(1)
    for target in targets:
        target["difficult"] = torch.rand(len(target["labels"]), generator=gen) < 0.2
    expected = devkit_voc_map(preds, targets, 0.5, use_07_metric)
    result = voc_map(preds, targets, use_07_metric=use_07_metric)
    assert result["classes"].tolist() == list(expected)
    np.testing.assert_allclose(result["map_per_class"].numpy(), list(expected.values()), atol=1e-6)
    loose = voc_map(preds, targets, iou_threshold=0.3, use_07_metric=use_07_metric)["map_per_class"]
    np.testing.assert_allclose(
        loose.numpy(), list(devkit_voc_map(preds, targets, 0.3, use_07_metric).values()), atol=1e-6
    )


def test_voc07_equals_cocoeval_at_eleven_recall_points_when_matching_agrees():
    # With disjoint ground truths a detection reaches IoU >= 0.5 with at most one of them, so VOC's "best overlap,
    # claimed or not" and COCO's "best unclaimed" match the same boxes; COCOeval's precision at recall thresholds
    # i/10 is then VOC2007's 11-point AP (the all-point VOC AP has no COCO counterpart).
    gen = torch.Generator().manual_seed(2)
    preds, targets = [], []
    for _ in range(12):
        cells = torch.randperm(16, generator=gen)[:5]
        corner = torch.stack([cells % 4, cells // 4], 1) * 60.0
        boxes = torch.cat([corner, corner + _grid(20 + 30 * torch.rand(5, 2, generator=gen))], 1)
        labels = torch.randint(0, 3, (5,), generator=gen)
        targets.append({"boxes": boxes, "labels": labels})
        source = torch.randint(0, 5, (7,), generator=gen)
        jitter = _grid(torch.randn(7, 4, generator=gen) * 4)
        dets = boxes[source] + jitter
        dets = torch.cat([torch.minimum(dets[:, :2], dets[:, 2:]), torch.maximum(dets[:, :2], dets[:, 2:])], 1)
        scores = (torch.rand(7, generator=gen) * 10).round() / 10
        preds.append({"boxes": dets, "scores": scores, "labels": labels[source]})
    evaluation = cocoeval(preds, targets, [0.5], (np.arange(11) / 10).tolist(), [1, 10, 100])
    result = voc_map(preds, targets, use_07_metric=True)
    assert abs(float(result["map"]) - evaluation.stats[0]) < 1e-6
    assert 0.1 < evaluation.stats[0] < 0.95
