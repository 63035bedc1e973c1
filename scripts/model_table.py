"""Print the README's model table: parameters and MACs (fvcore) at 224×224 for every registered model.

python scripts/model_table.py [--input-size 224] [--pattern 'resnet*']
"""

from __future__ import annotations

import argparse

from tqdm import tqdm

import zoo
from zoo.analysis import count_macs, count_parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--pattern", default="*")
    args = parser.parse_args()
    rows = []
    for name in tqdm(zoo.list_models(args.pattern), desc="counting"):
        model = zoo.create_model(name)
        macs = count_macs(model, (3, args.input_size, args.input_size))
        rows.append((name, count_parameters(model), macs))
    print(f"| model | params | MACs @ {args.input_size} (G) | FLOPs = 2×MACs (G) |")
    print("|---|---:|---:|---:|")
    for name, params, macs in sorted(rows, key=lambda r: r[2]):
        print(f"| `{name}` | {params:,} | {macs / 1e9:.2f} | {2 * macs / 1e9:.2f} |")


if __name__ == "__main__":
    main()
