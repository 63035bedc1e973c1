"""Command line: parameters, MACs (fvcore and closed form) and receptive fields of a zoo model.

    python -m zoo.flops resnet50                     # per-module table and totals at the model's input size
    python -m zoo.flops resnet50 --input-size 299    # or two numbers: --input-size 256 320
    python -m zoo.flops resnet50 --depth 1           # one row per stage instead of per layer
    python -m zoo.flops resnet50 --rf                # receptive field of each stage
    python -m zoo.flops resnet50 --json              # one JSON object
    python -m zoo.flops yolov3 --num-classes 20      # detectors and segmenters too

The default input size is the model's ``model_spec(name).default_input_size`` (224×224 for most classifiers,
416×416 for YOLOv3, 520×520 for DeepLabV3, ...), with the model's ``in_chans`` (3 where it has none); the
default class count is its builder's. A bad argument is one ``error:`` line on stderr and exit status 2.
fvcore counts one fused multiply-add as one flop; zoo calls that a MAC, and FLOPs = 2·MACs.
"""

from __future__ import annotations

import argparse
import json
import sys

import zoo
from zoo.analysis.flops import FlopCount, count_flops, resolve_input_size
from zoo.registry import model_spec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zoo.flops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a registered model name (see zoo.list_models())")
    parser.add_argument("--input-size", type=int, nargs="+", metavar="S", help="S, or H W (default: the model's)")
    parser.add_argument("--num-classes", type=int, default=None, help="default: the builder's")
    parser.add_argument("--depth", type=int, default=None, help="aggregate rows to this many name levels")
    parser.add_argument("--rf", action="store_true", help="also print the receptive field of each stage")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return parser


def measure(args: argparse.Namespace) -> tuple[FlopCount, object]:
    """The count (and receptive field, with ``--rf``) the arguments ask for; a bad argument is a ValueError or
    TypeError saying what was expected."""
    if args.depth is not None and args.depth < 1:
        raise ValueError(f"--depth must be a positive number of name levels, got {args.depth}")
    if args.input_size is not None and len(args.input_size) > 2:
        raise ValueError(f"--input-size takes S or H W (the channels are the model's), got {args.input_size}")
    spec = model_spec(args.model)  # an unknown name: a ValueError with the closest matches
    model = zoo.create_model(args.model, **({} if args.num_classes is None else {"num_classes": args.num_classes}))
    # Detectors and segmenters without `in_chans` read 3-channel images.
    size = resolve_input_size(args.input_size or spec.default_input_size, getattr(model, "in_chans", 3))
    (min_height, min_width), (height, width) = spec.min_input_size, size[1:]
    if height < min_height or width < min_width:
        raise ValueError(f"--input-size: {args.model} needs at least {min_height}×{min_width}, got {height}×{width}")
    result = count_flops(model, size)
    result.model = args.model
    rf = None
    if args.rf:
        from zoo.analysis.receptive_field import receptive_field

        rf = receptive_field(model, size)
    return result, rf


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result, rf = measure(args)
    except (ValueError, TypeError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        payload = result.to_dict()
        if rf is not None:
            payload["receptive_field"] = [
                {"module": stage.module, "reduction": stage.reduction, "size": stage.geometry.size,
                 "jump": stage.geometry.jump, "start": stage.geometry.start}
                for stage in rf.stages()
            ]  # fmt: skip
        print(json.dumps(payload))
        return 0
    print(result.table(depth=args.depth))
    if rf is not None:
        print("\nreceptive field per stage (size r, jump j = effective stride, start = centre of the first unit)")
        print(rf.table(stages=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
