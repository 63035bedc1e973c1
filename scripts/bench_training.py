"""Training-side benchmarks for `scripts/benchmark.py --training` and `--gpu` (see that script's docstring).

- overhead: optimisation steps/s of `train(cfg)` (train.py with its default callbacks, logger and progress bar)
  against a plain PyTorch loop over the same model, data, optimizer, schedule and loss (target ratio ≤ 1.10).
- data: samples/s of the default data's training loader alone against samples/s of a training step of the
  default model: the built-in data must be faster than the model consumes it.
- gpu: ResNet-50 training throughput (images/s) of zoo's model and torchvision's under the same loop, with
  bf16 autocast and channels_last, with and without torch.compile, and the fraction of the GPU's peak bf16
  FLOP/s achieved (FLOPs per image from the counter: 3 × forward, 2 FLOPs per MAC).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from tqdm import tqdm

import zoo
from zoo.analysis import count_macs
from zoo.tasks.optim import param_groups_weight_decay
from zoo.training import _build, build_model, train

ROOT = Path(__file__).resolve().parents[1]

# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' datasheets, SXM parts.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}


def _compose(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


class _StepTimer(pl.Callback):
    """Wall time of training steps after ``warmup`` steps, validation excluded."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.steps, self.start, self.elapsed = warmup, 0, None, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.steps == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self.steps += 1
        if self.start is not None:
            self.elapsed = time.perf_counter() - self.start

    def steps_per_second(self) -> float:
        return (self.steps - self.warmup) / self.elapsed


def overhead(model: str = "resnet18", steps: int = 60, warmup: int = 10, output_dir: str = "/tmp/zoo_bench") -> dict:
    """Steps/s of train.py and of a plain loop on the same model, data and batch size."""
    overrides = [
        f"model={model}",
        f"paths.output_dir={output_dir}",
        f"data.train_size={128 * (steps + warmup)}",
        "data.val_size=128",
        "trainer.max_epochs=1",
        "++trainer.num_sanity_val_steps=0",
        "trainer.limit_val_batches=0",
    ]
    timer = _StepTimer(warmup)
    cfg = _compose(*overrides)
    train(cfg, extra_callbacks=[timer])
    train_py = timer.steps_per_second()

    pl.seed_everything(cfg.seed)
    datamodule = _build(cfg.data)
    net = build_model(cfg.model, num_classes=datamodule.num_classes, in_chans=datamodule.in_chans)
    groups = param_groups_weight_decay(net, cfg.optimizer.weight_decay, True)
    optimizer = _build(cfg.optimizer)(params=groups)
    loader = datamodule.train_dataloader()
    total = len(loader)
    scheduler = _build(cfg.scheduler)(optimizer, total_steps=total, steps_per_epoch=total)
    loss_fn = torch.nn.CrossEntropyLoss()
    net.train()
    start, count = None, 0
    for images, labels in loader:
        if count == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(images), labels)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss.item()  # Lightning reads the loss every step too
        count += 1
    plain = (count - warmup) / (time.perf_counter() - start)
    ratio = plain / train_py
    return {"model": model, "batch": cfg.data.batch_size, "train_py": train_py, "plain": plain, "ratio": ratio}


def data_throughput(model: str = "resnet18", batches: int = 40) -> dict:
    """Samples/s of the default training loader alone and of a training step of ``model`` on its batches."""
    cfg = _compose(f"model={model}")
    datamodule = _build(cfg.data)
    datamodule.setup()
    loader = datamodule.train_dataloader()
    start, seen = time.perf_counter(), 0
    for index, (images, _) in enumerate(loader):
        seen += len(images)
        if index + 1 == batches:
            break
    loader_rate = seen / (time.perf_counter() - start)
    net = build_model(cfg.model, num_classes=datamodule.num_classes, in_chans=datamodule.in_chans).train()
    optimizer = torch.optim.AdamW(net.parameters())
    images, labels = next(iter(loader))
    times = []
    for _ in range(6):
        start = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(images), labels).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    step_rate = len(images) / min(times[1:])
    return {"model": model, "loader": loader_rate, "train_step": step_rate, "ratio": loader_rate / step_rate}


def gpu_throughput(batch_size: int = 256, steps: int = 30, warmup: int = 10) -> list[dict]:
    """ResNet-50 images/s (zoo vs torchvision), bf16 autocast + channels_last, with and without compile."""
    import torchvision

    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = next((tflops for key, tflops in PEAK_BF16_TFLOPS.items() if key in name), None)
    flops_per_image = 3 * 2 * count_macs(zoo.create_model("resnet50"), (3, 224, 224))
    x = torch.randn(batch_size, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch_size,), device=device)
    rows = []
    builders = {"zoo": lambda: zoo.create_model("resnet50"), "torchvision": torchvision.models.resnet50}
    runs = [(source, compiled) for compiled in (False, True) for source in builders]
    for source, compiled in tqdm(runs, unit="run"):
        model = builders[source]().to(device, memory_format=torch.channels_last).train()
        if compiled:
            model.compile()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for step in range(warmup + steps):
            if step == warmup:
                torch.cuda.synchronize()
                start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        torch.cuda.synchronize()
        rate = steps * batch_size / (time.perf_counter() - start)
        fraction = rate * flops_per_image / (peak * 1e12) if peak else None
        rows.append({"model": source, "compile": compiled, "images_per_s": rate, "peak_fraction": fraction})
    return rows
