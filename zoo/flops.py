"""Command line: parameters, MACs (fvcore and closed form) and receptive fields of a zoo model.

    python -m zoo.flops resnet50                     # per-module table and totals at 224×224
    python -m zoo.flops resnet50 --input-size 299    # or two numbers: --input-size 256 320
    python -m zoo.flops resnet50 --depth 1           # one row per stage instead of per layer
    python -m zoo.flops resnet50 --rf                # receptive field of each stage
    python -m zoo.flops resnet50 --json              # one JSON object

fvcore counts one fused multiply-add as one flop; zoo calls that a MAC, and FLOPs = 2·MACs.
"""

from __future__ import annotations

import argparse
import json
import sys

import zoo
from zoo.analysis.flops import count_flops, resolve_input_size
from zoo.registry import model_spec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zoo.flops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a registered model name (see zoo.list_models())")
    parser.add_argument("--input-size", type=int, nargs="+", metavar="S", help="S, or H W (default: the model's)")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=None, help="aggregate rows to this many name levels")
    parser.add_argument("--rf", action="store_true", help="also print the receptive field of each stage")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model = zoo.create_model(args.model, num_classes=args.num_classes)
        size = resolve_input_size(args.input_size or model_spec(args.model).default_input_size, model.in_chans)
        result = count_flops(model, size)
    except (ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result.model = args.model
    rf = None
    if args.rf:
        from zoo.analysis.receptive_field import receptive_field

        rf = receptive_field(model, size)
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
