"""What torchvision's own op suite checks of its ops, checked of zoo's against torchvision's on the same inputs:
empty inputs of any shape, dtypes, non-contiguous tensors, autocast, gradients; and where zoo's error contract
differs on purpose (README, "Ops and metrics"). Graph capture (compile, export, fx) is tests/ops/test_graph_capture.py.
"""

import pytest
import torch
import torchvision.ops as tv

from zoo import ops


def boxes_and_scores(count=200, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(count, 2, generator=generator) * 100
    boxes = torch.cat([corner, corner + 5 + torch.rand(count, 2, generator=generator) * 40], dim=1)
    return boxes.to(dtype), torch.rand(count, generator=generator).to(dtype)


def features_and_rois(dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(2, 3, 20, 24, generator=generator).to(dtype)
    boxes, _ = boxes_and_scores(16, seed)
    batch = torch.randint(0, 2, (16, 1), generator=generator).float()
    return features, torch.cat([batch, boxes / 5], dim=1).to(dtype)


# --- empty inputs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(0, 4), (0,)])
def test_batched_nms_of_no_boxes_is_empty_as_torchvision(shape):
    boxes, scores, idxs = torch.empty(shape), torch.empty(0), torch.empty(0, dtype=torch.long)
    expected = tv.batched_nms(boxes, scores, idxs, 0.5)
    got = ops.batched_nms(boxes, scores, idxs, 0.5)
    assert got.dtype == expected.dtype == torch.int64 and got.shape == expected.shape == (0,)


def test_nms_of_no_boxes_is_empty_as_torchvision():
    got, expected = ops.nms(torch.empty(0, 4), torch.empty(0), 0.5), tv.nms(torch.empty(0, 4), torch.empty(0), 0.5)
    assert got.dtype == expected.dtype and got.shape == expected.shape == (0,)


@pytest.mark.parametrize("op", ["roi_align", "roi_pool"])
def test_roi_ops_of_no_boxes_give_an_empty_batch_of_the_output_size(op):
    features = torch.randn(2, 3, 8, 8)
    for boxes in (torch.empty(0, 5), [torch.empty(0, 4), torch.empty(0, 4)]):
        expected = getattr(tv, op)(features, boxes, (2, 3))
        got = getattr(ops, op)(features, boxes, (2, 3))
        assert got.shape == expected.shape == (0, 3, 2, 3) and got.dtype == expected.dtype


def test_box_functions_of_no_boxes_are_empty_as_torchvision():
    none, some = torch.empty(0, 4), boxes_and_scores(3)[0]
    for name in ("box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou"):
        assert getattr(ops, name)(none, some).shape == getattr(tv, name)(none, some).shape == (0, 3)
    assert ops.box_area(none).shape == tv.box_area(none).shape == (0,)
    assert ops.remove_small_boxes(none, 1.0).shape == tv.remove_small_boxes(none, 1.0).shape


# --- dtypes ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nms_keeps_what_torchvision_keeps_in_each_dtype(dtype):
    boxes, scores = boxes_and_scores(500, dtype=dtype)
    torch.testing.assert_close(ops.nms(boxes, scores, 0.4), tv.nms(boxes, scores, 0.4), rtol=0, atol=0)
    idxs = torch.arange(500) % 4
    torch.testing.assert_close(
        ops.batched_nms(boxes, scores, idxs, 0.4), tv.batched_nms(boxes, scores, idxs, 0.4), rtol=0, atol=0
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roi_ops_equal_torchvision_in_each_dtype(dtype):
    features, rois = features_and_rois(dtype)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(
        ops.roi_align(features, rois, 3, 1.0, -1, True), tv.roi_align(features, rois, 3, 1.0, -1, True),
        rtol=tolerance, atol=tolerance,
    )  # fmt: skip
    torch.testing.assert_close(ops.roi_pool(features, rois, 3), tv.roi_pool(features, rois, 3), rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_quantized_tensors_are_a_type_error_naming_the_dtype():
    boxes, scores = boxes_and_scores(10)
    quantized = torch.quantize_per_tensor(boxes, scale=0.5, zero_point=0, dtype=torch.quint8)
    with pytest.raises(TypeError, match="quint8"):
        ops.nms(quantized, scores, 0.5)
    with pytest.raises(TypeError, match="quint8"):
        ops.box_iou(quantized, boxes)
    features, rois = features_and_rois()
    with pytest.raises(TypeError, match="qint8"):
        ops.roi_align(torch.quantize_per_tensor(features, 0.1, 0, torch.qint8), rois, 2)


def test_integer_boxes_are_computed_as_float_as_torchvision():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    torch.testing.assert_close(ops.box_iou(boxes, boxes), tv.box_iou(boxes, boxes))


# --- layout ------------------------------------------------------------------------------------------------
def test_non_contiguous_inputs_give_the_contiguous_results():
    boxes, scores = boxes_and_scores(300)
    strided = boxes.T.contiguous().T  # the same values, column-major
    assert not strided.is_contiguous()
    torch.testing.assert_close(ops.nms(strided, scores, 0.5), tv.nms(boxes, scores, 0.5), rtol=0, atol=0)
    features, rois = features_and_rois()
    channels_last = features.to(memory_format=torch.channels_last)
    assert not channels_last.is_contiguous()
    torch.testing.assert_close(
        ops.roi_align(channels_last, rois, 2, 1.0, 2), tv.roi_align(features, rois, 2, 1.0, 2), rtol=1e-5, atol=1e-5
    )


# --- autocast and gradients --------------------------------------------------------------------------------
def test_roi_align_under_cpu_autocast_equals_torchvision_under_it():
    features, rois = features_and_rois()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ops.roi_align(features, rois, 2, 1.0, 2, True)
        expected = tv.roi_align(features, rois, 2, 1.0, 2, True)
    assert got.dtype == expected.dtype
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["roi_align", "roi_pool"])
def test_roi_op_gradients_equal_torchvision_and_pass_gradcheck(op):
    features, rois = features_and_rois(torch.float64)
    weight = torch.randn(16, 3, 2, 2, dtype=torch.float64)
    grads = []
    for module in (ops, tv):
        leaf = features.clone().requires_grad_()
        (getattr(module, op)(leaf, rois, 2, 1.0) * weight).sum().backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(*grads, rtol=1e-10, atol=1e-10)
    small = features[:, :, :8, :8].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda f: getattr(ops, op)(f, rois[:4] / 3, 2, 1.0), (small,))


# --- where zoo's contract differs on purpose ---------------------------------------------------------------
def test_inverted_boxes_are_refused_where_torchvision_computes_negative_areas():
    inverted = torch.tensor([[10.0, 10.0, 0.0, 0.0]])
    assert tv.box_area(inverted).item() == 100.0  # (-10) x (-10): a silent wrong answer
    with pytest.raises(ValueError, match="x2 >= x1"):
        ops.box_area(inverted)


def test_bad_arguments_are_value_or_type_errors_where_torchvision_raises_assertion_or_runtime_errors():
    features, rois = features_and_rois()
    with pytest.raises(AssertionError):
        tv.roi_align(features, rois[:, :4], 2)
    with pytest.raises(ValueError, match=r"Tensor\[K, 5\]"):
        ops.roi_align(features, rois[:, :4], 2)
    boxes, scores = boxes_and_scores(5)
    with pytest.raises(RuntimeError):
        tv.nms(boxes, scores[:3], 0.5)
    with pytest.raises(ValueError, match="one per box"):
        ops.nms(boxes, scores[:3], 0.5)


# --- silent answers torchvision gives, refused here (issue 15's probe) -------------------------------------
def test_ious_of_infinite_boxes_are_refused_where_torchvision_gives_zero_and_nan():
    infinite = torch.tensor([[0.0, 0.0, float("inf"), 10.0]])
    finite = torch.tensor([[0.0, 0.0, 5.0, 5.0]])
    assert tv.box_iou(infinite, finite).item() == 0.0 and tv.generalized_box_iou(infinite, infinite).isnan().all()
    for name in ("box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou"):
        with pytest.raises(ValueError, match="finite coordinates; box 0"):
            getattr(ops, name)(infinite, finite)
    with pytest.raises(ValueError, match="finite"):
        ops.generalized_box_iou_loss(infinite, finite)


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_box_convert_refuses_a_negative_size(fmt):
    boxes = torch.tensor([[10.0, 10.0, 4.0, 4.0], [10.0, 10.0, -4.0, 4.0]])
    with pytest.raises(ValueError, match="box 1 is"):
        ops.box_convert(boxes, fmt, "xyxy")
    torch.testing.assert_close(ops.box_convert(boxes[:1], fmt, "xyxy"), tv.box_convert(boxes[:1], fmt, "xyxy"))


def test_clip_boxes_refuses_a_negative_image_size():
    boxes = torch.tensor([[-5.0, 2.0, 30.0, 40.0]])
    with pytest.raises(ValueError, match="size"):
        ops.clip_boxes_to_image(boxes, (-1, 20))
    torch.testing.assert_close(ops.clip_boxes_to_image(boxes, (25, 20)), tv.clip_boxes_to_image(boxes, (25, 20)))


def test_box_coder_refuses_a_zero_size_proposal_where_torchvision_gives_inf_codes():
    from torchvision.models.detection._utils import BoxCoder as ReferenceBoxCoder

    targets = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 9.0, 12.0]])
    proposals = torch.tensor([[1.0, 1.0, 11.0, 9.0], [4.0, 4.0, 4.0, 10.0]])  # the second is 0 wide
    assert not ReferenceBoxCoder((1.0, 1.0, 1.0, 1.0)).encode_single(targets, proposals).isfinite().all()
    with pytest.raises(ValueError, match="proposals: expected boxes of positive width and height; box 1"):
        ops.BoxCoder((1.0, 1.0, 1.0, 1.0)).encode_single(targets, proposals)


def test_sigmoid_focal_loss_refuses_targets_outside_zero_one():
    logits = torch.randn(4, 3)
    targets = torch.tensor([[0.0, 1.0, 2.0]] * 4)
    assert (tv.sigmoid_focal_loss(logits, targets, reduction="none") < 0).any()  # torchvision: a negative loss
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ops.sigmoid_focal_loss(logits, targets)
