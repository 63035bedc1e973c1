"""ONNX for zoo's registered ops: each becomes the standard ONNX operator it computes, as torchvision's ops do.

``torch.onnx.export(..., dynamo=True, custom_translation_table=translation_table())`` writes ``zoo::nms`` as
``NonMaxSuppression``, ``zoo::batched_nms`` as ``NonMaxSuppression`` on boxes shifted apart by category (the
coordinate trick torchvision's export uses: boxes of different categories can then never overlap), and
``zoo::roi_align`` as ``RoiAlign`` (``half_pixel`` coordinates when aligned, ``output_half_pixel`` for the legacy
mode; a sampling ratio <= 0 is ONNX's adaptive 0). Runtimes (onnxruntime, TensorRT) implement those operators
natively. The value checks of the eager ops are not part of the ONNX graph.

Needs ``onnxscript`` (``pip install -e .[onnx]``), imported only when a table is asked for.
"""

from __future__ import annotations

import torch

__all__ = ["translation_table"]


def translation_table() -> dict:
    """``{torch op overload: onnxscript function}`` for ``torch.onnx.export``'s ``custom_translation_table``."""
    from onnxscript import FLOAT, INT64  # noqa: F401  (the types the functions below produce)
    from onnxscript import opset18 as op

    def _select(boxes, scores, iou_threshold: float):
        # NonMaxSuppression takes [batch, boxes, 4] and [batch, classes, boxes]; it returns rows of
        # (batch, class, box index), by decreasing score within the one class here.
        selected = op.NonMaxSuppression(
            op.Unsqueeze(op.Cast(boxes, to=FLOAT.dtype), [0]),
            op.Unsqueeze(op.Cast(scores, to=FLOAT.dtype), [0, 1]),
            op.Constant(value_ints=[1 << 62]),
            op.Constant(value_floats=[iou_threshold]),
        )
        return op.Reshape(op.Slice(selected, [2], [3], [1]), [-1])

    def nms(boxes, scores, iou_threshold: float):
        return _select(boxes, scores, iou_threshold)

    def batched_nms(boxes, scores, idxs, iou_threshold: float):
        boxes = op.Cast(boxes, to=FLOAT.dtype)
        spacing = op.Add(op.ReduceMax(boxes, keepdims=0), op.Constant(value_float=1.0))
        offsets = op.Mul(op.Cast(idxs, to=FLOAT.dtype), spacing)
        return _select(op.Add(boxes, op.Unsqueeze(offsets, [1])), scores, iou_threshold)

    def roi_align(input, rois, spatial_scale: float, height: int, width: int, sampling_ratio: int, aligned: bool):
        batch_index = op.Cast(op.Reshape(op.Slice(rois, [0], [1], [1]), [-1]), to=INT64.dtype)
        return op.RoiAlign(
            input,
            op.Slice(rois, [1], [5], [1]),
            batch_index,
            coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
            mode="avg",
            output_height=height,
            output_width=width,
            sampling_ratio=max(sampling_ratio, 0),
            spatial_scale=spatial_scale,
        )

    return {
        torch.ops.zoo.nms.default: nms,
        torch.ops.zoo.nms_matrix.default: nms,
        torch.ops.zoo.batched_nms.default: batched_nms,
        torch.ops.zoo.roi_align.default: roi_align,
    }
