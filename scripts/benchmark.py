"""Speed of zoo's models against their torchvision/timm counterparts, in one process.

For every model with a counterpart, both are built, the reference's weights are loaded into ours,
and forward (eval, no grad) and forward+backward (train) times are measured on the same input,
interleaved (ours, reference, ours, reference, …) so that drift in machine load hits both alike.
Medians are reported with the ratio ours / reference (target ≤ 1.05).

    python scripts/benchmark.py                       # every model, batch 8 at 224, CPU
    python scripts/benchmark.py --pattern 'resnet*' --batch-size 32 --input-size 128 --repeats 10
    python scripts/benchmark.py --out docs            # also docs/benchmark.md and docs/benchmark.png
    python scripts/benchmark.py --ops --out docs      # the ops section: docs/benchmark_ops.md and .png
    python scripts/benchmark.py --attention --out docs  # hand-written attention vs F.scaled_dot_product_attention
    python scripts/benchmark.py --pattern 'vit_b_16,swin_t' --out docs   # the transformers against their references
    # detectors (summed losses) and segmenters against torchvision and smp:
    python scripts/benchmark.py --pattern '*_fpn,ssd*,fcn_resnet50,lraspp*,*unet*_resnet34,*pn_resnet34,psp*34' \
        --batch-size 2 --input-size 320 --repeats 3 --out docs/dense

    python scripts/benchmark.py --training --out docs # train.py overhead and data speed: docs/benchmark_training.md
    python scripts/benchmark.py --gpu --out docs      # ResNet-50 bf16 training throughput on a GPU (see below)

The ops section times zoo.ops against torchvision's compiled kernels on the same inputs: NMS (1k, 5k, 20k
boxes), batched NMS, RoIAlign (512 RoIs on a 256×50×50 map) and box_iou (2k×2k).

The training section (scripts/bench_training.py) measures train.py's overhead (its optimisation steps/s against
a plain PyTorch loop over the same model, data and batch; target ratio ≤ 1.10) and whether the built-in data is
generated faster than the default model consumes it; `--gpu` measures ResNet-50 training throughput of zoo's
model and torchvision's (bf16, channels_last, with and without torch.compile) and the fraction of the GPU's
peak bf16 FLOP/s achieved.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm

import zoo
from zoo.reference import build_reference, reference_source


def _time(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _logits(output):
    if isinstance(output, torch.Tensor):
        return output
    return output["out"] if isinstance(output, dict) else output[0]  # a segmenter's {"out", "aux"}; a tuple


def _detection_targets(batch_size: int, side: int, masks: bool, device: torch.device) -> list[dict]:
    """Two boxes per image (labels 1 and 2), with their filled-box masks for Mask R-CNN."""
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.6], [0.4, 0.3, 0.9, 0.8]], device=device) * side
    targets = []
    for _ in range(batch_size):
        target = {"boxes": boxes, "labels": torch.tensor([1, 2], device=device)}
        if masks:
            grid = torch.arange(side, device=device) + 0.5
            inside_x = (grid >= boxes[:, None, 0]) & (grid <= boxes[:, None, 2])
            inside_y = (grid >= boxes[:, None, 1]) & (grid <= boxes[:, None, 3])
            target["masks"] = (inside_y[:, :, None] & inside_x[:, None, :]).to(torch.uint8)
        targets.append(target)
    return targets


def compare(name: str, batch_size: int, side: int, repeats: int, device: torch.device) -> dict:
    """Forward (eval, no grad) and forward+backward (train) of ours and the reference on the same input: a
    classifier's or segmenter's summed output, a detector's summed losses on fixed targets (its eval forward
    includes its post-processing). Detectors take their images at ``side`` and resize them as they are built to."""
    spec = zoo.model_spec(name)
    ours = zoo.create_model(name, **spec.reference_build_kwargs).to(device)
    reference = build_reference(name).to(device)
    zoo.load_reference_weights(ours, reference.state_dict())
    side = max(side, *spec.min_input_size)
    x = torch.randn(batch_size, 3, side, side, device=device)
    if spec.task == "detection":
        x = x.uniform_()  # images in [0, 1], as the detectors' transforms expect
        targets = _detection_targets(batch_size, side, masks="mask" in name, device=device)

    def forward(model):
        model.eval()
        with torch.no_grad():
            model(list(x) if spec.task == "detection" else x)

    def forward_backward(model):
        model.train()
        model.zero_grad(set_to_none=True)
        if spec.task == "detection":
            sum(model(list(x), targets).values()).backward()
        else:
            _logits(model(x)).float().mean().backward()

    result = {"model": name, "input": side, "batch": batch_size}
    for label, step in (("forward", forward), ("forward+backward", forward_backward)):
        step(ours), step(reference)  # warm-up
        times = {"ours": [], "reference": []}
        for _ in range(repeats):
            times["ours"].append(_time(lambda step=step: step(ours), device))
            times["reference"].append(_time(lambda step=step: step(reference), device))
        ours_ms = 1000 * statistics.median(times["ours"])
        reference_ms = 1000 * statistics.median(times["reference"])
        result[label] = (ours_ms, reference_ms, ours_ms / reference_ms)
    return result


def _random_boxes(n: int, image_size: float, generator: torch.Generator) -> torch.Tensor:
    """Boxes clustered around a few hundred centres, so that NMS has real work to do."""
    centres = torch.rand(max(1, n // 20), 2, generator=generator) * image_size
    pick = torch.randint(len(centres), (n,), generator=generator)
    xy = centres[pick] + 8 * torch.randn(n, 2, generator=generator)
    wh = 16 + 48 * torch.rand(n, 2, generator=generator)
    return torch.cat([xy - wh / 2, xy + wh / 2], dim=1)


def ops_cases(device: torch.device) -> list[tuple]:
    """(label, ours, torchvision[, ours compiled]) on shared inputs; by default ``ours`` is compiled whole."""
    import torchvision.ops as tv

    from zoo.ops import batched_nms, box_iou, nms, roi_align

    generator = torch.Generator().manual_seed(0)
    cases = []
    for n in (1000, 5000, 20000):
        boxes = _random_boxes(n, 1000.0, generator).to(device)
        scores = torch.rand(n, generator=generator).to(device)
        cases.append((f"nms, {n} boxes", partial(nms, boxes, scores, 0.5), partial(tv.nms, boxes, scores, 0.5)))
    boxes = _random_boxes(5000, 1000.0, generator).to(device)
    scores = torch.rand(5000, generator=generator).to(device)
    classes = torch.randint(20, (5000,), generator=generator).to(device)
    cases.append(
        (
            "batched_nms, 5000 boxes, 20 classes",
            partial(batched_nms, boxes, scores, classes, 0.5),
            partial(tv.batched_nms, boxes, scores, classes, 0.5),
        )
    )
    features = torch.randn(1, 256, 50, 50, generator=generator).to(device)
    rois = torch.cat([torch.zeros(512, 1), _random_boxes(512, 800.0, generator).clamp(0, 800)], dim=1).to(device)
    for ratio in (2, -1):
        kwargs = dict(output_size=7, spatial_scale=1 / 16, sampling_ratio=ratio, aligned=True)
        cases.append(
            (
                f"roi_align, 512 RoIs, 256x50x50, sampling {ratio}",
                partial(roi_align, features, rois, **kwargs),
                partial(tv.roi_align, features, rois, **kwargs),
            )
        )
    leaf = features.clone().requires_grad_(True)

    def align_backward(fn):
        leaf.grad = None
        fn(leaf, rois, output_size=7, spatial_scale=1 / 16, sampling_ratio=2, aligned=True).sum().backward()

    cases.append(
        (
            "roi_align fwd+bwd, 512 RoIs, sampling 2",
            partial(align_backward, roi_align),
            partial(align_backward, tv.roi_align),
            partial(align_backward, torch.compile(roi_align, fullgraph=True)),  # backward() itself runs eagerly
        )
    )
    boxes1 = _random_boxes(2000, 1000.0, generator).to(device)
    boxes2 = _random_boxes(2000, 1000.0, generator).to(device)
    cases.append(("box_iou, 2000x2000", partial(box_iou, boxes1, boxes2), partial(tv.box_iou, boxes1, boxes2)))
    return cases


def compare_ops(repeats: int, device: torch.device) -> list[dict]:
    """Eager zoo, zoo under ``torch.compile(fullgraph=True)`` and torchvision, interleaved, per case."""
    rows = []
    for label, ours, reference, *compiled in tqdm(ops_cases(device), unit="op"):
        compiled = compiled[0] if compiled else torch.compile(ours, fullgraph=True)
        variants = {"ours": ours, "compiled": compiled, "reference": reference}
        for fn in variants.values():  # warm-up (and compilation)
            fn()
        times = {key: [] for key in variants}
        for _ in range(repeats):
            for key, fn in variants.items():
                times[key].append(_time(fn, device))
        ms = {key: 1000 * statistics.median(values) for key, values in times.items()}
        rows.append(
            {
                "op": label,
                **ms,
                "ratio": ms["ours"] / ms["reference"],
                "compiled_ratio": ms["compiled"] / ms["reference"],
            }
        )
    return rows


def write_ops_report(rows: list[dict], out: Path, machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [
        "# zoo.ops against torchvision's compiled kernels",
        "",
        f"Generated by `python {' '.join(sys.argv)}` on {machine}. Medians of interleaved runs;",
        "ratio = ours (vectorised PyTorch) / torchvision (C++ kernel); compiled: zoo's op inside",
        "`torch.compile(fullgraph=True)` (NMS and the RoI ops are registered operators: the compiled graph calls the",
        "same eager code, without the Python checks in front of it; box_iou is fused by Inductor).",
        "",
        "| op | ours ms | compiled ms | torchvision ms | ratio | compiled ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['op']} | {r['ours']:.2f} | {r['compiled']:.2f} | {r['reference']:.2f} | {r['ratio']:.2f} | "
        f"{r['compiled_ratio']:.2f} |"
        for r in rows
    ]
    (out / "benchmark_ops.md").write_text("\n".join(lines) + "\n\n![ratios](benchmark_ops.png)\n")

    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.5), dpi=120)
    positions = torch.arange(len(rows)).tolist()
    ax.barh([p - 0.2 for p in positions], [r["ratio"] for r in rows], height=0.4, label="eager")
    ax.barh([p + 0.2 for p in positions], [r["compiled_ratio"] for r in rows], height=0.4, label="compiled")
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.legend(fontsize=8)
    ax.set_yticks(positions, [r["op"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time ours / time torchvision (log scale, lower is faster)")
    ax.set_title(f"zoo.ops vs torchvision.ops, {machine}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "benchmark_ops.png")
    plt.close(fig)


def write_report(rows: list[dict], out: Path, machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [
        "# Speed against the reference implementations",
        "",
        f"Generated by `python scripts/benchmark.py --out {out}` on {machine}. Medians of interleaved runs;",
        "ratio = ours / reference (target ≤ 1.05).",
        "",
        "| model | input | batch | forward ms (ours / ref) | ratio | fwd+bwd ms (ours / ref) | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        f, b = r["forward"], r["forward+backward"]
        lines.append(
            f"| `{r['model']}` | {r['input']} | {r['batch']} | {f[0]:.1f} / {f[1]:.1f} | {f[2]:.3f} | "
            f"{b[0]:.1f} / {b[1]:.1f} | {b[2]:.3f} |"
        )
    (out / "benchmark.md").write_text("\n".join(lines) + "\n\n![ratios](benchmark.png)\n")

    fig, ax = plt.subplots(figsize=(10, max(3, 0.35 * len(rows) + 1.5)), dpi=120)
    names = [r["model"] for r in rows]
    positions = range(len(rows))
    ax.barh([p - 0.2 for p in positions], [r["forward"][2] for r in rows], height=0.4, label="forward")
    ax.barh([p + 0.2 for p in positions], [r["forward+backward"][2] for r in rows], height=0.4, label="fwd+bwd")
    ax.axvline(1.0, color="black", lw=0.8)
    ax.axvline(1.05, color="red", lw=0.8, ls="--", label="target 1.05")
    ax.set_yticks(list(positions), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time ours / time reference (lower is faster)")
    ax.set_title(f"zoo vs torchvision/timm, {machine}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "benchmark.png")
    plt.close(fig)


def run_training_benchmarks(args: argparse.Namespace, machine: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import bench_training

    lines = [
        "# Training speed",
        "",
        f"Generated by `python scripts/benchmark.py {'--training' if args.training else '--gpu'}` on {machine}.",
        "",
    ]
    if args.training:
        over = bench_training.overhead()
        data = bench_training.data_throughput()
        lines += [
            "| measure | train.py / loader | plain loop / training step | ratio |",
            "|---|---:|---:|---:|",
            f"| {over['model']} optimisation steps/s, batch {over['batch']} | {over['train_py']:.2f} | "
            f"{over['plain']:.2f} | {over['ratio']:.3f} (plain / train.py, target ≤ 1.10) |",
            f"| {data['model']} samples/s: built-in data vs training step | {data['loader']:.0f} | "
            f"{data['train_step']:.0f} | {data['ratio']:.1f} (loader / step, must be > 1) |",
            "",
        ]
    if args.gpu:
        if not torch.cuda.is_available():
            raise SystemExit("--gpu needs a CUDA device")
        lines += [
            "| ResNet-50, bf16 + channels_last | compile | images/s | fraction of peak bf16 |",
            "|---|---|---:|---:|",
        ]
        for r in bench_training.gpu_throughput():
            fraction = f"{r['peak_fraction']:.1%}" if r["peak_fraction"] is not None else "peak unknown"
            lines.append(f"| {r['model']} | {r['compile']} | {r['images_per_s']:.0f} | {fraction} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        name = "benchmark_training.md" if args.training else "benchmark_gpu.md"
        (args.out / name).write_text(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pattern", default="*", help="fnmatch pattern(s), comma-separated")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=None, help="write benchmark.md and benchmark.png here")
    parser.add_argument("--ops", action="store_true", help="time zoo.ops against torchvision.ops instead of models")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--training", action="store_true", help="train.py overhead and data-loader speed")
    parser.add_argument("--attention", action="store_true", help="hand-written attention vs PyTorch's, L 64-4096")
    parser.add_argument("--gpu", action="store_true", help="ResNet-50 bf16 training throughput on a CUDA GPU")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    if args.training or args.gpu:
        run_training_benchmarks(args, machine)
        return
    if args.attention:
        from bench_attention import compare_attention, write_attention_report

        rows = compare_attention(device, args.repeats)
        print(f"\n{'L':>6}{'zoo ms':>10}{'math ms':>10}{'fused ms':>10}{'zoo/math':>10}{'zoo/fused':>10}   ({machine})")
        for r in rows:
            print(
                f"{r['length']:>6}{r['zoo']:>10.2f}{r['math']:>10.2f}{r['fused']:>10.2f}{r['vs_math']:>10.2f}"
                f"{r['vs_fused']:>10.2f}"
            )
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            write_attention_report(rows, args.out, machine)
        return
    if args.ops:
        rows = compare_ops(args.repeats, device)
        print(f"\n{'op':<44}{'ours ms':>10}{'compiled':>10}{'tv ms':>10}{'ratio':>8}{'compiled':>10}   ({machine})")
        for r in rows:
            print(
                f"{r['op']:<44}{r['ours']:>10.2f}{r['compiled']:>10.2f}{r['reference']:>10.2f}{r['ratio']:>8.2f}"
                f"{r['compiled_ratio']:>10.2f}"
            )
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            write_ops_report(rows, args.out, machine)
        return
    # DETR's reference (transformers) takes pixel values and its own label format: it is compared in its tests.
    names = [
        n
        for n in zoo.list_models(args.pattern.split(","))
        if reference_source(n) is not None and reference_source(n)[0] != "transformers"
    ]
    rows = [compare(n, args.batch_size, args.input_size, args.repeats, device) for n in tqdm(names, unit="model")]
    print(f"\n{'model':<22}{'fwd ours/ref ms':>20}{'ratio':>8}{'fwd+bwd ours/ref ms':>24}{'ratio':>8}   ({machine})")
    for r in rows:
        f, b = r["forward"], r["forward+backward"]
        print(f"{r['model']:<22}{f'{f[0]:.1f}/{f[1]:.1f}':>20}{f[2]:>8.3f}{f'{b[0]:.1f}/{b[1]:.1f}':>24}{b[2]:>8.3f}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        write_report(rows, args.out, machine)


if __name__ == "__main__":
    main()
