"""Export a model for deployment: ``torch.export`` (an ExportedProgram, saved as ``.pt2``) and ONNX.

Both are traced at one image size with a dynamic batch dimension, in eval mode, and checked against the
eager model on the same input (:func:`max_export_error`). ONNX needs the ``onnx`` and ``onnxscript``
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
    "max_export_error",
    "model_from_checkpoint",
    "onnx_available",
]

MAX_BATCH = 1024


def _example(model: nn.Module, image_size: int, batch_size: int) -> torch.Tensor:
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    in_chans = getattr(model, "in_chans", 3)
    return torch.randn(batch_size, in_chans, image_size, image_size, generator=torch.Generator().manual_seed(0))


def export_program(model: nn.Module, image_size: int, batch_size: int = 2) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` in eval mode at ``image_size``² with a dynamic batch dimension."""
    model.eval()
    example = _example(model, image_size, batch_size)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))


def onnx_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript"))


def export_onnx(model: nn.Module, path: str | Path, image_size: int, batch_size: int = 2) -> Path:
    """Write ``model`` as ONNX (torch's dynamo exporter) with a dynamic batch dimension; returns the path."""
    if not onnx_available():
        raise ImportError("ONNX export needs the onnx and onnxscript packages: pip install -e .[onnx]")
    model.eval()
    example = _example(model, image_size, batch_size)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.onnx.export(
        model, (example,), dynamo=True, dynamic_shapes=({0: batch},), input_names=["images"], output_names=["logits"]
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path))
    return path


@torch.no_grad()
def max_export_error(
    model: nn.Module, exported: torch.export.ExportedProgram | str | Path, image_size: int, batch_size: int = 3
) -> float:
    """Largest difference between eager ``model`` and its export (a program, or an ``.onnx`` file run with
    onnxruntime) on a batch of another size than the one traced, in units of the output's largest magnitude
    when that exceeds 1 (randomly initialised deep nets can output logits of 1e8 and more, where float32
    rounding alone exceeds any absolute tolerance)."""
    model.eval()
    example = _example(model, image_size, batch_size)
    expected = model(example)
    if isinstance(exported, torch.export.ExportedProgram):
        got = exported.module()(example)
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: example.numpy()})[0])
    return float((got - expected).abs().max() / expected.abs().max().clamp(min=1.0))


def model_from_checkpoint(name: str, checkpoint_path: str | Path) -> nn.Module:
    """Build registry model ``name`` and load a train.py checkpoint (or a plain state_dict file) into it.

    ``num_classes`` and ``in_chans`` are read from the weights: the first conv's input channels and the
    last linear layer's outputs."""
    from zoo.checkpoint import load_checkpoint
    from zoo.registry import create_model

    checkpoint = load_checkpoint(checkpoint_path)
    state = checkpoint.get("state_dict", checkpoint)
    if any(key.startswith("model.") for key in state):  # a Lightning checkpoint of a zoo task
        state = {key.removeprefix("model."): value for key, value in state.items() if key.startswith("model.")}
    tensors = [value for value in state.values() if isinstance(value, torch.Tensor)]
    convs = [value for value in tensors if value.dim() == 4]
    linears = [value for value in tensors if value.dim() == 2]
    if not convs or not linears:
        raise ValueError(f"checkpoint {str(checkpoint_path)!r} holds no conv and linear weights of a classifier")
    model = create_model(name, num_classes=linears[-1].shape[0], in_chans=convs[0].shape[1])
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(
            f"checkpoint {str(checkpoint_path)!r} does not fit {name}: {str(error).splitlines()[0]}"
        ) from None
    return model.eval()
