"""Table and plot of a finished (or running) sweep: `python scripts/sweep_report.py multirun/<date_time>`.

Reads each run's metrics.json and writes sweep.md and sweep.png into the sweep directory (or --out).
"""

import argparse
import sys
from pathlib import Path

from zoo.analysis.sweep import collect_runs, write_sweep_report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    try:
        runs = collect_runs(args.sweep_dir)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    table, picture = write_sweep_report(runs, args.out or args.sweep_dir)
    print(table.read_text())
    print(f"wrote {table} and {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
