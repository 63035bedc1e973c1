"""Export a trained model: `python scripts/export.py resnet18 outputs/<run>/checkpoints/best.ckpt`.

Any registered model: classifiers and segmenters with a dynamic batch, detectors for one image with their
post-processing (decoding, NMS, top-k) inside the graph. Writes `<out>.pt2` (torch.export) and, with `--onnx`,
`<out>.onnx`; each is checked against the eager model (detectors on a built-in scene) and the largest difference
printed (it must stay below --tolerance). Bad arguments are one `error:` line, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from zoo.export import export_onnx, export_program, max_export_error, model_from_checkpoint, onnx_available


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="registry name, e.g. resnet18")
    parser.add_argument("checkpoint", help="a train.py checkpoint (.ckpt) or a state_dict file")
    parser.add_argument("--image-size", type=int, default=None, help="default: the data size of the run, else 224")
    parser.add_argument("--out", default=None, help="output path without suffix (default: next to the checkpoint)")
    parser.add_argument("--onnx", action="store_true", help="also write ONNX (needs onnx, onnxscript)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)

    try:
        model = model_from_checkpoint(args.model, args.checkpoint)
        image_size = args.image_size or _run_image_size(Path(args.checkpoint)) or max(model.spec.default_input_size)
        if image_size < max(model.spec.min_input_size):
            raise ValueError(
                f"--image-size: {args.model} needs at least {max(model.spec.min_input_size)}, got {image_size}"
            )
        out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix("")
        out.parent.mkdir(parents=True, exist_ok=True)
    except (ValueError, TypeError, FileNotFoundError, PermissionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    images = _scene(image_size) if model.spec.task == "detection" else None
    program = export_program(model, image_size)
    torch.export.save(program, str(out.with_suffix(".pt2")))
    errors = {str(out.with_suffix(".pt2")): max_export_error(model, program, image_size, images=images)}
    if args.onnx:
        if not onnx_available():
            print("error: --onnx needs the onnx and onnxscript packages (pip install -e .[onnx])", file=sys.stderr)
            return 2
        path = export_onnx(model, out.with_suffix(".onnx"), image_size)
        try:
            errors[str(path)] = max_export_error(model, path, image_size, images=images)
        except ImportError:
            print(f"wrote {path} (not checked: onnxruntime is not installed)")
    for path, error in errors.items():
        print(f"wrote {path}  ({image_size}px, max |exported - eager| / max(1, max |eager|) = {error:.2e})")
    return 0 if all(error <= args.tolerance for error in errors.values()) else 1


def _scene(image_size: int) -> torch.Tensor:
    """A built-in scene of three shapes: what a detector is checked on (random noise finds nothing)."""
    from zoo.data.synthetic import render_scenes

    return render_scenes(1, image_size, 3, generator=torch.Generator().manual_seed(0)).images


def _run_image_size(checkpoint: Path) -> int | None:
    """The image size of the train.py run the checkpoint belongs to (its .hydra/config.yaml), if there."""
    for run_dir in (checkpoint.parent.parent, checkpoint.parent):
        config = run_dir / ".hydra" / "config.yaml"
        if config.is_file():
            from omegaconf import OmegaConf

            size = OmegaConf.load(config).get("data", {}).get("image_size")
            return size if isinstance(size, int) else None
    return None


if __name__ == "__main__":
    sys.exit(main())
