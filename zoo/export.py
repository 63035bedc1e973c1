"""Export a model for deployment: ``torch.export`` (an ExportedProgram, saved as ``.pt2``) and ONNX.

Both are traced at one image size in eval mode and checked against the eager model on the same input
(:func:`max_export_error`). Classifiers and segmenters get a dynamic batch dimension; a detector is traced at a
fixed batch with its post-processing inside the graph (decoding, NMS, top-k: zoo's registered ops, which ONNX
writes as its ``NonMaxSuppression`` and ``RoiAlign``, :mod:`zoo.ops.onnx_translations`), and returns
``[{"boxes", "scores", "labels"}]`` per image as in eager mode. ONNX needs the ``onnx`` and ``onnxscript``
packages (``pip install -e .[onnx]``); its check runs the file with ``onnxruntime`` when that is installed.
``scripts/export.py <model> <checkpoint>`` does both for a trained checkpoint.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "export_onnx",
    "export_program",
    "infer_num_classes",
    "max_export_error",
    "model_from_checkpoint",
    "onnx_available",
]

MAX_BATCH = 1024


def _task(model: nn.Module) -> str:
    spec = getattr(model, "spec", None)
    return spec.task if spec is not None else "classification"


def _example(model: nn.Module, image_size: int, batch_size: int) -> torch.Tensor:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    in_chans = getattr(model, "in_chans", 3)
    generator = torch.Generator().manual_seed(0)
    if _task(model) == "detection":  # one image in [0, 1], as a detector's transform expects
        return torch.rand(1, in_chans, image_size, image_size, generator=generator)
    return torch.randn(batch_size, in_chans, image_size, image_size, generator=generator)


def _dynamic_shapes(model: nn.Module):
    """A dynamic batch, except for detectors (traced per image: a fixed batch)."""
    if _task(model) == "detection":
        return None
    return ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)


def export_program(model: nn.Module, image_size: int, batch_size: int = 2) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` in eval mode at ``image_size``² (a dynamic batch, but for detectors)."""
    model.eval()
    example = _example(model, image_size, batch_size)
    return torch.export.export(model, (example,), dynamic_shapes=_dynamic_shapes(model))


def onnx_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript"))


def export_onnx(model: nn.Module, path: str | Path, image_size: int, batch_size: int = 2) -> Path:
    """Write ``model`` as ONNX (torch's dynamo exporter; a dynamic batch, but for detectors); returns the path.
    Outputs are named ``logits``, or after their keys (``out``, ``boxes_0``, ``scores_0``, ``labels_0``, ...)."""
    if not onnx_available():
        raise ImportError("ONNX export needs the onnx and onnxscript packages: pip install -e .[onnx]")
    from zoo.ops.onnx_translations import translation_table

    model.eval()
    example = _example(model, image_size, batch_size)
    with torch.no_grad():
        names = _output_names(model(example))
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        dynamic_shapes=_dynamic_shapes(model),
        input_names=["images"],
        output_names=names,
        custom_translation_table=translation_table(),
        verbose=False,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path))
    return path


def _output_names(output) -> list[str]:
    if isinstance(output, torch.Tensor):
        return ["logits"]
    if isinstance(output, dict):
        return list(output)
    return [f"{key}_{index}" for index, per_image in enumerate(output) for key in per_image]


def _leaves(output) -> list[torch.Tensor]:
    return torch.utils._pytree.tree_leaves(output)


def _detection_error(got: list[torch.Tensor], expected: list[torch.Tensor], output) -> float | None:
    """For a detector's outputs (per image: boxes, scores, labels), the error of the best match of the two sets
    of detections: NMS may return tied detections in any order (onnxruntime's differs from torch's), so each
    expected detection is paired with the closest unpaired one of the same label. None for other outputs."""
    if not (isinstance(output, list) and output and isinstance(output[0], dict) and "scores" in output[0]):
        return None
    keys, worst = list(output[0]), 0.0
    for start in range(0, len(expected), len(keys)):
        mine = dict(zip(keys, expected[start : start + len(keys)], strict=True))
        theirs = dict(zip(keys, got[start : start + len(keys)], strict=True))
        if len(mine["scores"]) != len(theirs["scores"]):
            return float("inf")
        scale = mine["boxes"].abs().max().clamp(min=1.0) if len(mine["boxes"]) else 1.0
        box_error = (mine["boxes"][:, None] - theirs["boxes"][None].to(mine["boxes"].dtype)).abs().amax(-1) / scale
        score_error = (mine["scores"][:, None] - theirs["scores"][None].to(mine["scores"].dtype)).abs()
        cost = torch.maximum(box_error, score_error)
        cost[mine["labels"][:, None] != theirs["labels"][None].to(mine["labels"].dtype)] = float("inf")
        for row in cost:  # greedy: a few hundred detections at most
            column = int(row.argmin())
            worst = max(worst, float(row[column]))
            cost[:, column] = float("inf")
    return worst


def _leaf_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest difference in units of the largest magnitude when that exceeds 1 (for boxes: of the image size,
    near enough); integer outputs (labels) must be equal; outputs of another shape (another number of
    detections) are infinitely wrong."""
    if got.shape != expected.shape:
        return float("inf")
    if expected.numel() == 0:
        return 0.0
    if not expected.is_floating_point():
        return 0.0 if torch.equal(got.to(expected.dtype), expected) else float("inf")
    return float((got - expected).abs().max() / expected.abs().max().clamp(min=1.0))


@torch.no_grad()
def max_export_error(
    model: nn.Module,
    exported: torch.export.ExportedProgram | str | Path,
    image_size: int,
    batch_size: int = 3,
    images: torch.Tensor | None = None,
) -> float:
    """Largest difference between eager ``model`` and its export (a program, or an ``.onnx`` file run with
    onnxruntime) on a batch of another size than the one traced, in units of the output's largest magnitude
    when that exceeds 1 (randomly initialised deep nets can output logits of 1e8 and more, where float32
    rounding alone exceeds any absolute tolerance); the largest over all outputs (a detector's boxes, scores and
    labels). Detectors are compared on ``images`` (e.g. built-in scenes) or random ones, at batch 1."""
    model.eval()
    example = _example(model, image_size, batch_size) if images is None else images
    eager = model(example)
    expected = _leaves(eager)
    if isinstance(exported, torch.export.ExportedProgram):
        got = _leaves(exported.module()(example))
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
        got = [torch.from_numpy(value) for value in session.run(None, {session.get_inputs()[0].name: example.numpy()})]
    if len(got) != len(expected):
        return float("inf")
    detections = _detection_error(got, expected, eager)
    if detections is not None:
        return detections
    return max((_leaf_error(g, e) for g, e in zip(got, expected, strict=True)), default=0.0)


def _state_of(checkpoint_path: str | Path) -> dict[str, torch.Tensor]:
    from zoo.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(checkpoint_path)
    state = checkpoint.get("state_dict", checkpoint)
    if any(key.startswith("model.") for key in state):  # a Lightning checkpoint of a zoo task
        state = {key.removeprefix("model."): value for key, value in state.items() if key.startswith("model.")}
    return {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}


def infer_num_classes(name: str, state: dict[str, torch.Tensor]) -> int:
    """The class count ``state`` was trained with: the model is built (shapes only) at 1 and 2 classes, and a
    weight whose shape changes with it (the classifier, YOLO's ``A·(5 + C)`` predictions, CenterNet's heat map)
    is solved for C, its size being affine in C."""
    from zoo.registry import create_model

    with torch.device("meta"):
        one, two = (create_model(name, num_classes=n).state_dict() for n in (1, 2))
    for key, shape in ((k, v.shape) for k, v in one.items()):
        if key in state and shape != two[key].shape:
            dim = next(d for d in range(len(shape)) if shape[d] != two[key].shape[d])
            per_class = two[key].shape[dim] - shape[dim]
            classes, rest = divmod(state[key].shape[dim] - shape[dim], per_class)
            if rest == 0 and classes >= 0:
                return classes + 1
    raise ValueError(f"the weights hold no layer of {name} whose size gives the number of classes")


def model_from_checkpoint(name: str, checkpoint_path: str | Path) -> nn.Module:
    """Build registry model ``name`` and load a train.py checkpoint (or a plain state_dict file) into it.

    ``num_classes`` is read from the weights (:func:`infer_num_classes`), and for classifiers ``in_chans`` from
    the first conv's input channels."""
    from zoo.registry import create_model, model_spec

    state = _state_of(checkpoint_path)
    kwargs = {"num_classes": infer_num_classes(name, state)}
    if model_spec(name).task == "classification":
        convs = [value for value in state.values() if value.dim() == 4]
        if not convs:
            raise ValueError(f"checkpoint {str(checkpoint_path)!r} holds no conv weights of a classifier")
        kwargs["in_chans"] = convs[0].shape[1]
    model = create_model(name, **kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(
            f"checkpoint {str(checkpoint_path)!r} does not fit {name}: {str(error).splitlines()[0]}"
        ) from None
    return model.eval()
