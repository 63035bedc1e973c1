"""Write the FLOPs report of every registered model at its canonical input size:

    docs/flops_report.md   table: params, MACs (fvcore), 2×MACs, closed-form check, published value,
                           its source and the relative difference
    docs/flops_report.csv  the same numbers, machine-readable
    docs/flops_report.png  MACs against params (log-log), each model labelled
    (detectors and segmenters get their own table at a stated input size; two-stage counts depend on the
    number of proposals)

    python scripts/flops_report.py [--out docs] [--pattern 'resnet*']
    python scripts/flops_report.py --readme README.md   # also rewrite the README's model tables

fvcore counts one fused multiply-add as one flop, which we call a MAC; FLOPs = 2·MACs.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
from tqdm import tqdm  # noqa: E402

import zoo  # noqa: E402
from zoo.analysis.flops import count_flops, resolve_input_size  # noqa: E402
from zoo.reference import reference_label  # noqa: E402
from zoo.registry import model_spec  # noqa: E402

COLUMNS = [
    "model", "input", "params", "gmacs", "gflops", "closed_form_agrees",
    "published_params", "published_gmacs", "source", "rel_diff_gmacs", "tolerance",
]  # fmt: skip


# Detectors and segmenters: a note on how each is counted (the input size is its spec's default_input_size).
DENSE_NOTES = {
    "faster_rcnn_resnet50_fpn": "two-stage: the box head runs on the RPN's proposals (up to 1000 in eval); "
    "torchvision lists 134.38 GFLOPS (its counter counts MACs)",
    "faster_rcnn_resnet18_fpn": "two-stage, small-image defaults: up to 300 proposals in eval",
    "faster_rcnn_mobilenet_v3_large_fpn": "two-stage, small-image defaults: up to 300 proposals in eval",
    "yolov3": "published: 65.86 BFLOPs at 416 (Darknet counts 2 per MAC)",
    "deeplabv3_resnet50": "output stride 8; torchvision lists 178.72 GFLOPS (MACs) with the aux head",
    "deeplabv3_resnet101": "output stride 8; torchvision lists 258.74 GFLOPS (MACs) with the aux head",
    "deeplabv3_mobilenet_v3_large": "output stride 16; torchvision lists 10.45 GFLOPS (MACs) with aux",
    "deeplabv3plus_resnet50": "output stride 16",
    "unet": "the paper's input size, padded convolutions",
}
# The class count each dense model is counted (and tabled) at: COCO's 91 for torchvision-style detectors,
# VOC's 21 for segmenters, unless its usual dataset has another.
DENSE_CLASSES = {"detection": 91, "segmentation": 21}
DENSE_CLASSES_OF = {"yolov3": 80, "yolov3_mobilenet_v2": 80, "centernet_resnet18": 80, "unet": 2}


def measure_dense(pattern: str) -> list[dict]:
    """Detectors and segmenters at their spec's default input size, at their usual dataset's class count."""
    rows = []
    names = [n for task in ("detection", "segmentation") for n in zoo.list_models(pattern, task=task)]
    for name in tqdm(names, desc="counting detectors/segmenters", unit="model"):
        height, width = model_spec(name).default_input_size
        classes = DENSE_CLASSES_OF.get(name, DENSE_CLASSES[model_spec(name).task])
        result = count_flops(zoo.create_model(name, num_classes=classes), (3, height, width))
        rows.append(
            {"model": name, "input": f"{height}×{width}", "classes": classes, "params": result.params,
             "gmacs": round(result.macs / 1e9, 3), "note": DENSE_NOTES.get(name, "")}
        )  # fmt: skip
    return rows


def measure(pattern: str) -> list[dict]:
    rows = []
    for name in tqdm(zoo.list_models(pattern, task="classification"), desc="counting", unit="model"):
        spec = model_spec(name)
        published = spec.published
        model = zoo.create_model(name, **(published.build_kwargs if published else {}))
        size = resolve_input_size(spec.default_input_size, model.in_chans)
        result = count_flops(model, size)
        gmacs = result.macs / 1e9
        rows.append(
            {
                "model": name,
                "input": "×".join(map(str, size[1:])),
                "params": result.params,
                "gmacs": round(gmacs, 4),
                "gflops": round(2 * gmacs, 4),
                "closed_form_agrees": result.macs == result.macs_closed_form,
                "published_params": published.params if published and published.params else "",
                "published_gmacs": published.gmacs if published else "",
                "source": published.source if published else "",
                "rel_diff_gmacs": round((gmacs - published.gmacs) / published.gmacs, 4) if published else "",
                "tolerance": published.gmacs_tolerance if published else "",
            }
        )
    return rows


def write_markdown(rows: list[dict], path: Path, dense_rows: list[dict] = ()) -> None:
    lines = [
        "# Parameters and compute per model",
        "",
        "Generated by `python scripts/flops_report.py`. MACs counted by fvcore on one image in eval mode",
        '(1 fused multiply-add = 1 MAC; FLOPs = 2×MACs); "closed form" is the independent count from each',
        "layer's hyperparameters (`zoo.analysis.formulas`). Published values: torchvision's weights meta counts",
        "conv + linear multiply-adds only, so fvcore's total (which adds batch norm and pooling) sits slightly",
        "above it; the SE-Net paper counts the ResNet v1 layout (each model's `published=` at its `@register_model`).",
        "",
        "| model | input | params | GMACs | GFLOPs (2×) | closed form | published params | published GMACs"
        " | source | rel. diff | tolerance |",
        "|---|---|---:|---:|---:|:---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        published_params = f"{r['published_params']:,}" if r["published_params"] else "–"
        rel = f"{100 * r['rel_diff_gmacs']:+.2f} %" if r["rel_diff_gmacs"] != "" else "–"
        tol = f"±{100 * r['tolerance']:.0f} %" if r["tolerance"] != "" else "–"
        lines.append(
            f"| `{r['model']}` | {r['input']} | {r['params']:,} | {r['gmacs']:.3f} | {r['gflops']:.3f} | "
            f"{'✓' if r['closed_form_agrees'] else '✗'} | {published_params} | {r['published_gmacs'] or '–'} | "
            f"{r['source'] or '–'} | {rel} | {tol} |"
        )
    lines += ["", "![MACs against parameters](flops_report.png)", ""]
    if dense_rows:
        lines += [
            "## Detectors and segmenters",
            "",
            "fvcore MACs of one image in eval mode (random weights) at the size given. A two-stage detector's",
            "count depends on how many proposals reach the box head (RoIAlign and the two FC layers run once",
            "per proposal), so it changes with the image content and the RPN's thresholds; the figure is for",
            "the proposals this input produced. Ops fvcore does not count (NMS, RoIAlign's bilinear sampling)",
            "are left out.",
            "",
            "| model | input | classes | params | GMACs | GFLOPs (2×) | note |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for r in dense_rows:
            lines.append(
                f"| `{r['model']}` | {r['input']} | {r['classes']} | {r['params']:,} | {r['gmacs']:.3f} | "
                f"{2 * r['gmacs']:.3f} | {r['note'] or '–'} |"
            )
        lines.append("")
    path.write_text("\n".join(lines))


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _family(name: str) -> str:
    for prefix in ("seresnext", "seresnet", "resnext", "wide_resnet", "resnet"):
        if name.startswith(prefix):
            return prefix
    return name.split("_")[0].rstrip("0123456789")


def _place_labels(ax, names: list[str], xs: list[float], ys: list[float], fontsize: int = 7) -> None:
    """Greedy placement: try a few offsets per label, keep the first that overlaps no placed label."""
    ax.figure.canvas.draw()
    to_pixels = ax.transData.transform
    placed: list[tuple[float, float, float, float]] = []
    offsets = [(6, 2), (6, -10), (6, 12), (6, -20), (-6, 2), (-6, -10), (-6, 12), (6, 22), (6, -30)]
    for name, x, y in sorted(zip(names, xs, ys, strict=True), key=lambda t: (t[1], t[2])):
        px, py = to_pixels((x, y))
        width, height = 0.62 * fontsize * len(name) * ax.figure.dpi / 72, fontsize * 1.3 * ax.figure.dpi / 72
        for dx, dy in offsets:
            x0 = px + dx * ax.figure.dpi / 72 - (width if dx < 0 else 0)
            y0 = py + dy * ax.figure.dpi / 72
            box = (x0, y0, x0 + width, y0 + height)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        ax.annotate(
            name, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
            ha="right" if dx < 0 else "left", arrowprops={"arrowstyle": "-", "lw": 0.4, "alpha": 0.5},
        )  # fmt: skip


def write_plot(rows: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 7), dpi=120)
    params = [r["params"] / 1e6 for r in rows]
    gmacs = [r["gmacs"] for r in rows]
    families = sorted({_family(r["model"]) for r in rows})
    colours = plt.get_cmap("tab10")
    for index, family in enumerate(families):
        members = [i for i, r in enumerate(rows) if _family(r["model"]) == family]
        ax.scatter([params[i] for i in members], [gmacs[i] for i in members], s=30, zorder=3,
                   color=colours(index % 10), label=family)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax.margins(x=0.25, y=0.15)
    _place_labels(ax, [r["model"] for r in rows], params, gmacs)
    ax.set_xlabel("parameters (millions, log scale)")
    ax.set_ylabel("GMACs per image at the canonical input (log scale)")
    ax.set_title("zoo models: compute against size (fvcore MACs; FLOPs = 2×MACs)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def readme_tables(rows: list[dict], dense_rows: list[dict]) -> dict[str, list[str]]:
    """The README's two model tables, from the specs and the counts (rows sorted by compute)."""
    classifiers = ["| model | input | params | GMACs | GFLOPs (2×MACs) | reference |", "|---|---:|---:|---:|---:|---|"]
    for r in sorted(rows, key=lambda r: (r["gmacs"], r["model"])):
        classifiers.append(
            f"| `{r['model']}` | {r['input']} | {r['params']:,} | {r['gmacs']:.3f} | {r['gflops']:.3f} | "
            f"{reference_label(r['model'])} |"
        )
    dense = ["| model | task | input | classes | params | GMACs | reference |", "|---|---|---:|---:|---:|---:|---|"]
    for r in dense_rows:
        dense.append(
            f"| `{r['model']}` | {model_spec(r['model']).task} | {r['input']} | {r['classes']} | {r['params']:,} | "
            f"{r['gmacs']:.3f} | {reference_label(r['model'])} |"
        )
    return {"classifiers": classifiers, "dense": dense}


def write_readme_tables(path: Path, tables: dict[str, list[str]]) -> None:
    """Replace the lines between ``<!-- models:<table> -->`` and ``<!-- /models:<table> -->`` in ``path``."""
    lines = path.read_text().splitlines()
    for table, body in tables.items():
        begin, end = f"<!-- models:{table} -->", f"<!-- /models:{table} -->"
        if begin not in lines or end not in lines:
            raise SystemExit(f"error: {path} has no {begin} ... {end} markers")
        first, last = lines.index(begin), lines.index(end)
        lines[first + 1 : last] = body
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    parser.add_argument("--pattern", default="*")
    parser.add_argument("--readme", type=Path, help="rewrite the model tables of this README (e.g. README.md)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = measure(args.pattern)
    dense_rows = measure_dense(args.pattern)
    write_markdown(rows, args.out / "flops_report.md", dense_rows)
    write_csv(rows, args.out / "flops_report.csv")
    write_plot(rows, args.out / "flops_report.png")
    print(f"wrote {args.out / 'flops_report.md'}, .csv and .png ({len(rows)} models)")
    if args.readme:
        write_readme_tables(args.readme, readme_tables(rows, dense_rows))
        print(f"rewrote the model tables of {args.readme}")


if __name__ == "__main__":
    main()
