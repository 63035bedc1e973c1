"""Every op of zoo.ops is captured whole: ``torch.compile(fullgraph=True)`` and ``torch.export`` give the eager
results, and ``torch.fx.symbolic_trace`` records the NMS and RoI ops as leaves, as torchvision's ops are.

Value checks that cannot run while tracing become assertions inside the graph: a compiled op still refuses
inverted boxes, with the check's message.
"""

import pytest
import torch
import torchvision
from torch import nn

from zoo import ops


def scene(count: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(count, 2, generator=generator) * 50
    boxes = torch.cat([corner, corner + 4 + torch.rand(count, 2, generator=generator) * 30], dim=1)
    return boxes, torch.rand(count, generator=generator)


def feature_rois(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(2, 4, 16, 16, generator=generator)
    boxes, _ = scene(12, seed)
    rois = torch.cat([torch.randint(0, 2, (12, 1), generator=generator).float(), boxes / 4], dim=1)
    return features, rois


def _boxes_pair():
    boxes, _ = scene(30)
    return boxes[:20], boxes[10:]


# name -> (function of tensors, example tensors); constants are bound in the function.
CASES = {
    "nms": (lambda b, s: ops.nms(b, s, 0.5), scene()),
    "batched_nms": (lambda b, s, i: ops.batched_nms(b, s, i, 0.5), (*scene(), torch.arange(60) % 3)),
    "nms_matrix": (lambda b, s: ops.nms_matrix(b, s, 0.5), scene()),
    "soft_nms": (lambda b, s: ops.soft_nms(b, s, 0.3, method="gaussian")[0], scene()),
    "roi_align": (lambda f, r: ops.roi_align(f, r, (3, 3), 0.5, 2, aligned=True), feature_rois()),
    "roi_align_adaptive": (lambda f, r: ops.roi_align(f, r, 2, 1.0, -1), feature_rois()),
    "roi_pool": (lambda f, r: ops.roi_pool(f, r, (2, 3), 0.5), feature_rois()),
    "box_iou": (ops.box_iou, _boxes_pair()),
    "generalized_box_iou": (ops.generalized_box_iou, _boxes_pair()),
    "distance_box_iou": (ops.distance_box_iou, _boxes_pair()),
    "complete_box_iou": (ops.complete_box_iou, _boxes_pair()),
    "box_area": (ops.box_area, scene()[:1]),
    "box_convert": (lambda b: ops.box_convert(b, "xyxy", "cxcywh"), scene()[:1]),
    "clip_boxes_to_image": (lambda b: ops.clip_boxes_to_image(b, (40, 30)), scene()[:1]),
    "remove_small_boxes": (lambda b: ops.remove_small_boxes(b, 10.0), scene()[:1]),
    "generalized_box_iou_loss": (lambda a, b: ops.generalized_box_iou_loss(a, b, reduction="sum"), _boxes_pair()),
    "complete_box_iou_loss": (lambda a, b: ops.complete_box_iou_loss(a, b, reduction="mean"), _boxes_pair()),
    "sigmoid_focal_loss": (
        lambda x, t: ops.sigmoid_focal_loss(x, t, reduction="mean"),
        (torch.randn(8, 5), (torch.rand(8, 5) > 0.7).float()),
    ),
    "smooth_l1_loss": (lambda a, b: ops.smooth_l1_loss(a, b, beta=1 / 9), (torch.randn(8, 4), torch.randn(8, 4))),
    "centernet_focal_loss": (
        ops.centernet_focal_loss,
        (torch.randn(2, 3, 8, 8), torch.rand(2, 3, 8, 8).pow(4).masked_fill(torch.rand(2, 3, 8, 8) > 0.95, 1.0)),
    ),
    "dice_loss": (ops.dice_loss, (torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8)))),
    "box_coder_decode": (
        lambda codes, boxes: ops.BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(codes, boxes),
        (torch.randn(60, 4) * 0.1, scene()[0]),
    ),
    "map_levels": (lambda b: ops.map_levels(b * 8, 2, 5), scene()[:1]),
}


class Wrap(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def assert_same(got, expected) -> None:
    got = got if isinstance(got, (tuple, list)) else (got,)
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiles_fullgraph_to_the_eager_result(name):
    fn, args = CASES[name]
    torch._dynamo.reset()
    assert_same(torch.compile(fn, fullgraph=True, backend="aot_eager")(*args), fn(*args))


@pytest.mark.parametrize("name", sorted(CASES))
def test_exports_to_the_eager_result(name):
    fn, args = CASES[name]
    program = torch.export.export(Wrap(fn), args)
    assert_same(program.module()(*args), fn(*args))


@pytest.mark.parametrize("name", ["nms", "batched_nms", "roi_align", "roi_pool"])
def test_registered_ops_compile_with_inductor(name):
    fn, args = CASES[name]
    torch._dynamo.reset()
    assert_same(torch.compile(fn, fullgraph=True)(*args), fn(*args))


def test_a_compiled_op_still_refuses_inverted_boxes():
    boxes, scores = scene()
    inverted = boxes.clone()
    inverted[3, 2] = inverted[3, 0] - 1
    torch._dynamo.reset()
    compiled = torch.compile(lambda b, s: ops.nms(b, s, 0.5), fullgraph=True, backend="aot_eager")
    with pytest.raises((ValueError, RuntimeError), match="x2 >= x1"):
        compiled(inverted, scores)
    with pytest.raises(ValueError, match="box 3 is"):  # eager names the box
        ops.nms(inverted, scores, 0.5)


def test_roi_align_gradient_through_compile_equals_torchvision():
    features, rois = feature_rois()
    weight = torch.randn(12, 4, 3, 3)

    def loss(f, r, op):
        return (op(f, r, (3, 3), 0.5, 2, True) * weight).sum()

    ours = features.clone().requires_grad_()
    torch._dynamo.reset()
    torch.compile(lambda f, r: loss(f, r, ops.roi_align), fullgraph=True, backend="aot_eager")(ours, rois).backward()
    theirs = features.clone().requires_grad_()
    loss(theirs, rois, torchvision.ops.roi_align).backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-5)


class Pooler(nn.Module):
    """A backbone-and-pooler model, the part of a two-stage detector a feature extractor is taken from."""

    def __init__(self, pooler) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.pooler = pooler

    def forward(self, images, rois):
        features = self.conv(images)
        return self.pooler({"0": features}, [rois], [(images.shape[-2], images.shape[-1])])


def test_fx_records_the_ops_as_leaves_and_feature_extraction_works():
    from torchvision.models.feature_extraction import create_feature_extractor

    def f(features, rois, boxes, scores):
        return ops.roi_align(features, rois, 2, 0.5), ops.roi_pool(features, rois, 2, 0.5), ops.nms(boxes, scores, 0.5)

    graph = torch.fx.symbolic_trace(f)
    targets = {str(node.target) for node in graph.graph.nodes if node.op == "call_function"}
    assert {"zoo.roi_align", "zoo.roi_pool", "zoo.nms"} <= targets
    args = (*feature_rois(), *scene())
    assert_same(graph(*args), f(*args))

    torch.manual_seed(0)
    model = Pooler(ops.MultiScaleRoIAlign(["0"], 3, 2)).eval()
    reference = Pooler(torchvision.ops.MultiScaleRoIAlign(["0"], 3, 2)).eval()
    reference.load_state_dict(model.state_dict())
    images, boxes = torch.randn(1, 3, 64, 64), scene(10)[0]
    extractor = create_feature_extractor(model, return_nodes={"conv": "features", "pooler": "pooled"})
    expected = create_feature_extractor(reference, return_nodes={"conv": "features", "pooler": "pooled"})
    got, want = extractor(images, boxes), expected(images, boxes)
    torch.testing.assert_close(got["pooled"], want["pooled"], rtol=1e-5, atol=1e-5)
