"""The picture people want from a zoo: validation accuracy against compute, one point per model of a sweep.

A Hydra multirun (`python train.py -m experiment=model_sweep`) writes one ``metrics.json`` per run
(:func:`zoo.training.train`); :func:`collect_runs` reads them from the sweep directory and
:func:`write_sweep_report` writes ``sweep.md`` (a table) and ``sweep.png`` (the task's metric against MACs,
log scale). :class:`SweepReport` does it when the multirun ends; ``scripts/sweep_report.py <dir>`` at any time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

__all__ = ["SweepReport", "collect_runs", "write_sweep_report"]


def collect_runs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The ``metrics.json`` of every run under ``sweep_dir``, sorted by MACs."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ValueError(f"sweep directory {str(sweep_dir)!r} does not exist")
    runs = [json.loads(path.read_text()) for path in sorted(sweep_dir.glob("*/metrics.json"))]
    if not runs:
        raise ValueError(f"no run under {str(sweep_dir)!r} has a metrics.json (did the runs finish?)")
    return sorted(runs, key=lambda run: run["macs"])


def write_sweep_report(runs: list[dict[str, Any]], out_dir: str | Path) -> tuple[Path, Path]:
    """``sweep.md`` and ``sweep.png`` in ``out_dir``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    monitor = runs[0]["monitor"]
    lines = [
        f"# Sweep: best {monitor} against compute",
        "",
        f"| model | params | MACs | best {monitor} |",
        "|---|---:|---:|---:|",
    ]
    for run in runs:
        best = f"{run['best']:.4f}" if run.get("best") is not None else "n/a"
        lines.append(f"| `{run['model']}` | {run['params']:,} | {run['macs'] / 1e6:,.1f} M | {best} |")
    table = out_dir / "sweep.md"
    table.write_text("\n".join(lines) + "\n\n![accuracy against MACs](sweep.png)\n")

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    points = [run for run in runs if run.get("best") is not None]
    ax.scatter([run["macs"] / 1e6 for run in points], [run["best"] for run in points])
    for run in points:
        ax.annotate(
            run["model"], (run["macs"] / 1e6, run["best"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    ax.set_xscale("log")
    ax.set_xlabel("MACs per image (millions, log scale)")
    ax.set_ylabel(f"best {monitor}")
    ax.set_title("validation metric against compute", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    picture = out_dir / "sweep.png"
    fig.savefig(picture)
    plt.close(fig)
    return table, picture


class SweepReport(Callback):
    """Hydra callback: write the sweep report into the sweep directory when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        table, picture = write_sweep_report(collect_runs(sweep_dir), sweep_dir)
        print(f"sweep report: {table} and {picture}")
