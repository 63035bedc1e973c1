"""The dense detectors' flatten and select against torchvision: ``concat_box_prediction_layers`` (the RPN's and
RetinaNet's flatten), ``batched_nms``, and RetinaNet's ``postprocess_detections`` (per-level top-k, score
threshold, class-wise NMS, detections per image); top-k against a hand-written sort."""

from types import SimpleNamespace

import pytest
import torch
import torchvision
from torchvision.models.detection import _utils as tv_det_utils
from torchvision.models.detection.retinanet import RetinaNet as ReferenceRetinaNet
from torchvision.models.detection.rpn import concat_box_prediction_layers

from zoo.models.detection.dense import Candidates, clip_to_images, flatten_levels, select_detections, top_candidates

LEVELS = [(6, 5), (3, 3), (2, 1)]  # (H, W) per level


def random_levels(generator, num_anchors, num_values, batch=2):
    return [torch.randn(batch, num_anchors * num_values, h, w, generator=generator) for h, w in LEVELS]


def test_flatten_matches_torchvision_concat_box_prediction_layers():
    generator = torch.Generator().manual_seed(0)
    logits, offsets = random_levels(generator, 3, 7), random_levels(generator, 3, 4)
    expected_logits, expected_offsets = concat_box_prediction_layers(logits, offsets)  # [N·P, C], [N·P, 4]
    flat_logits, flat_offsets = flatten_levels(logits, 7), flatten_levels(offsets, 4)
    assert flat_logits.shape == (2, 3 * sum(h * w for h, w in LEVELS), 7)
    assert torch.equal(flat_logits.flatten(0, 1), expected_logits)
    assert torch.equal(flat_offsets.flatten(0, 1), expected_offsets)


def test_flatten_order_by_hand():
    """Row p = (level start) + (row·W + column)·A + anchor holds channels a·K .. a·K + K − 1 of that cell."""
    generator = torch.Generator().manual_seed(1)
    outputs = random_levels(generator, 2, 3)
    flat = flatten_levels(outputs, 3)
    start = 0
    for output in outputs:
        _, _, height, width = output.shape
        for row in range(height):
            for column in range(width):
                for anchor in range(2):
                    p = start + (row * width + column) * 2 + anchor
                    assert torch.equal(flat[:, p], output[:, anchor * 3 : anchor * 3 + 3, row, column])
        start += height * width * 2


def test_flatten_rejects_channels_not_a_multiple():
    with pytest.raises(ValueError, match=r"outputs\[0\]: expected A·4 channels"):
        flatten_levels([torch.zeros(1, 6, 2, 2)], 4)


def hand_top_k(scores, k, threshold):
    """Per image, the k best (score, prediction, label) triples above the threshold, sorted in Python."""
    result = []
    for image, per_image in enumerate(scores.tolist()):
        triples = [(s, p, c) for p, row in enumerate(per_image) for c, s in enumerate(row) if s > threshold]
        result += [(image, p, c, s) for s, p, c in sorted(triples, reverse=True)[:k]]
    return result


@pytest.mark.parametrize("k, threshold", [(10, 0.3), (1000, 0.6), (5, 0.99)])
def test_top_candidates_over_all_levels_match_a_sort(k, threshold):
    scores = torch.rand(3, 40, 4, generator=torch.Generator().manual_seed(2))
    candidates = top_candidates(scores, k, threshold)
    found = list(zip(*(field.tolist() for field in candidates), strict=True))
    expected = hand_top_k(scores, k, threshold)
    assert [f[:3] for f in found] == [e[:3] for e in expected]
    torch.testing.assert_close(candidates.scores, torch.tensor([e[3] for e in expected]), rtol=0, atol=0)


def test_top_candidates_per_level():
    scores = torch.rand(2, 30, 3, generator=torch.Generator().manual_seed(3))
    level_sizes = [20, 7, 3]
    candidates = top_candidates(scores, 6, 0.2, level_sizes)
    expected, start = [], 0
    for size in level_sizes:
        for image, p, c, s in hand_top_k(scores[:, start : start + size], 6, 0.2):
            expected.append((image, start + p, c, s))
        start += size
    expected.sort(key=lambda e: e[0])  # image by image (a stable sort keeps the levels' order)
    found = list(zip(*(field.tolist() for field in candidates), strict=True))
    assert [f[:3] for f in found] == [e[:3] for e in expected]
    with pytest.raises(ValueError, match="level_sizes"):
        top_candidates(scores, 6, 0.2, [20, 7])


def random_boxes(generator, count, size=64.0):
    corners = size * torch.rand(count, 2, generator=generator)
    sides = 4 + 20 * torch.rand(count, 2, generator=generator)
    return torch.cat([corners, corners + sides], dim=1)


def test_select_detections_matches_torchvision_batched_nms():
    generator = torch.Generator().manual_seed(4)
    counts = [150, 0, 90]  # an image without candidates too
    image = torch.repeat_interleave(torch.arange(3), torch.tensor(counts))
    boxes = random_boxes(generator, len(image))
    scores = torch.rand(len(image), generator=generator)
    labels = torch.randint(0, 4, (len(image),), generator=generator)
    candidates = Candidates(image, torch.arange(len(image)), labels, scores)
    detections = select_detections(boxes, candidates, 3, 4, nms_thresh=0.3, detections_per_img=25)
    for index, found in enumerate(detections):
        mine = image == index
        keep = torchvision.ops.batched_nms(boxes[mine], scores[mine], labels[mine], 0.3)[:25]
        assert len(found["boxes"]) == len(keep) == (25 if counts[index] else 0)
        assert torch.equal(found["boxes"], boxes[mine][keep])
        assert torch.equal(found["scores"], scores[mine][keep])
        assert torch.equal(found["labels"], labels[mine][keep])


def test_selection_is_torchvision_retinanet_postprocessing():
    """Per-level top-k of the sigmoid scores above the threshold, decoding, clipping, NMS, detections per image:
    torchvision's ``RetinaNet.postprocess_detections`` on the same head outputs and anchors."""
    generator = torch.Generator().manual_seed(5)
    num_anchors, num_classes, image_size = 3, 5, (48, 40)
    logits = flatten_levels(random_levels(generator, num_anchors, num_classes), num_classes)
    offsets = 0.3 * flatten_levels(random_levels(generator, num_anchors, 4), 4)
    level_sizes = [h * w * num_anchors for h, w in LEVELS]
    anchors = random_boxes(generator, sum(level_sizes), size=40.0)
    coder = tv_det_utils.BoxCoder((1.0, 1.0, 1.0, 1.0))
    reference = SimpleNamespace(
        score_thresh=0.4, topk_candidates=20, nms_thresh=0.5, detections_per_img=15, box_coder=coder
    )
    expected = ReferenceRetinaNet.postprocess_detections(
        reference,
        {"cls_logits": list(logits.split(level_sizes, 1)), "bbox_regression": list(offsets.split(level_sizes, 1))},
        [list(anchors.split(level_sizes))] * 2,
        [image_size] * 2,
    )
    candidates = top_candidates(logits.sigmoid(), 20, 0.4, level_sizes)
    boxes = coder.decode_single(offsets[candidates.image, candidates.prediction], anchors[candidates.prediction])
    boxes = torchvision.ops.clip_boxes_to_image(boxes, image_size)
    detections = select_detections(boxes, candidates, 2, num_classes, nms_thresh=0.5, detections_per_img=15)
    for found, theirs in zip(detections, expected, strict=True):
        assert len(theirs["boxes"]) == 15
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(found[key], theirs[key]), key


def test_clip_to_images_clips_each_box_to_its_own_image_as_torchvision():
    generator = torch.Generator().manual_seed(0)
    boxes = torch.rand(30, 4, generator=generator) * 120 - 20
    image = torch.randint(0, 3, (30,), generator=generator)
    sizes = [(64, 48), (30, 90), (100, 100)]
    expected = torch.empty_like(boxes)
    for index, size in enumerate(sizes):
        expected[image == index] = torchvision.ops.clip_boxes_to_image(boxes[image == index], size)
    assert torch.equal(clip_to_images(boxes, image, sizes), expected)
