"""Scale switches on the CPU: DDP (two gloo processes), bf16 autocast, channels_last, torch.compile; sweeps."""

import copy
import csv
import json
import os

import pytest
import torch
from train_helpers import TINY_RUN, compose_train, run_cli

import zoo
from zoo.analysis import count_macs
from zoo.training import prepare_model, train

# One epoch of 4 steps, then validation.
RUN = [*TINY_RUN, "trainer.max_epochs=1"]


def _weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def _losses(run_dir):
    with open(run_dir / "csv" / "metrics.csv") as handle:
        return [float(row["train/loss_step"]) for row in csv.DictReader(handle) if row.get("train/loss_step")]


def _max_difference(a, b):
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].is_floating_point())


def _forward_backward(model, x):
    model.zero_grad(set_to_none=True)
    logits = model(x)
    logits.square().mean().backward()
    return logits.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


# torch.compile runs the inductor (30+ s on 2 cores): under `-m slow`.
@pytest.mark.parametrize("option", ["channels_last", pytest.param("compile", marks=pytest.mark.slow)])
def test_run_option_gives_the_plain_forward_and_gradients(option):
    """The same weights and batch in the plain path and with the option: logits and every gradient agree to
    float32 rounding (another conv algorithm or fused kernels)."""
    torch.manual_seed(0)
    plain = zoo.create_model("resnet18", num_classes=10).train()
    changed = copy.deepcopy(plain)
    prepare_model(changed, **{option: True})
    x = torch.randn(8, 3, 32, 32)
    logits, grads = _forward_backward(plain, x)
    logits_changed, grads_changed = _forward_backward(changed, x)
    torch.testing.assert_close(logits_changed, logits, atol=1e-4, rtol=1e-4)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_changed[name], grad, atol=1e-4, rtol=1e-3, msg=name)


def test_bf16_autocast_gives_the_float32_logits_to_bf16_precision():
    torch.manual_seed(0)
    model = zoo.create_model("resnet18", num_classes=10).eval()
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.dtype == torch.bfloat16
    # bf16 keeps 8 bits of mantissa (relative step 2^-8 ≈ 0.4 %); errors add up over 18 layers.
    assert (low.float() - reference).abs().max() / reference.abs().max() < 5e-2


@pytest.mark.parametrize(
    "option",
    [
        "model.channels_last=true",
        pytest.param("model.compile=true", marks=pytest.mark.slow),
        "trainer.precision=bf16-mixed",
    ],
)
def test_run_options_train_through_train_py(tmp_path, option):
    """Each switch runs a short training through train(cfg); its first loss (before any update) is the plain
    path's, within the switch's precision."""
    plain = train(compose_train(tmp_path / "plain", *RUN, "trainer.max_epochs=1", "trainer.limit_train_batches=2"))
    switched = train(
        compose_train(tmp_path / "switched", *RUN, "trainer.max_epochs=1", "trainer.limit_train_batches=2", option)
    )
    first, first_switched = _losses(tmp_path / "plain")[0], _losses(tmp_path / "switched")[0]
    tolerance = 3e-2 if "bf16" in option else 1e-4
    assert first_switched == pytest.approx(first, rel=tolerance)
    assert torch.isfinite(torch.tensor(switched["train/loss"])) and "val/acc" in plain


def test_model_run_options_are_checked():
    model = zoo.create_model("resnet18", num_classes=3)
    with pytest.raises(TypeError, match="model.channels_last must be true or false"):
        prepare_model(model, channels_last="yes")
    with pytest.raises(ValueError, match="model.bn_momentum"):
        prepare_model(model, bn_momentum=2.0)
    prepared = prepare_model(model, channels_last=True, bn_momentum=0.2)
    kernels = [p for p in prepared.parameters() if p.dim() == 4]
    assert kernels and all(k.is_contiguous(memory_format=torch.channels_last) for k in kernels)
    assert {m.momentum for m in prepared.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.2}
    seen = []
    prepared.conv1.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    prepared.eval()(torch.randn(1, 3, 32, 32))
    assert seen[0].is_contiguous(memory_format=torch.channels_last)


# SGD with a small rate, and a ResNet-18 without normalisation layers: per-process batch-norm statistics
# would make the runs differ by design, and torch's SyncBatchNorm runs on GPUs only (there, use
# trainer.sync_batchnorm=true).
DDP_RUN = [
    *RUN,
    "optimizer=sgd",
    "optimizer.lr=0.005",
    "scheduler=constant",
    "+model.norm_layer._target_=hydra.utils.get_class",
    "+model.norm_layer.path=torch.nn.Identity",
    "trainer.accelerator=cpu",
]


@pytest.mark.slow  # two DDP processes: 40 s
def test_ddp_on_two_cpu_processes_matches_one_process_with_the_global_batch(tmp_path):
    """Two gloo processes with batch 8 each end with the weights of one process with batch 16: the same
    samples per step (zoo/data/resumable.py) and the same averaged gradients."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = run_cli(*DDP_RUN, "data.batch_size=16", f"hydra.run.dir={tmp_path}/single", cwd=tmp_path, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp_args = ["trainer=ddp", "trainer.devices=2", "data.batch_size=8", f"hydra.run.dir={tmp_path}/ddp"]
    ddp = run_cli(*DDP_RUN, *ddp_args, cwd=tmp_path, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = _weights(tmp_path / "single"), _weights(tmp_path / "ddp")
    assert one.keys() == two.keys()
    assert _max_difference(one, two) < 1e-5
    assert torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    untrained = zoo.create_model("resnet18", num_classes=10, norm_layer=torch.nn.Identity).state_dict()
    assert _max_difference({k: v for k, v in one.items()}, {f"model.{k}": v for k, v in untrained.items()}) > 1e-3


@pytest.mark.slow  # a Hydra multirun of five models (35 s); test_train.py's multirun test keeps the mechanism
def test_model_sweep_writes_a_table_and_a_plot(tmp_path):
    result = run_cli(
        "-m",
        "experiment=model_sweep",
        "model=resnet18,mobilenet_v3_small",
        "trainer.fast_dev_run=true",
        "data.train_size=32",
        "data.val_size=16",
        "data.batch_size=16",
        f"hydra.sweep.dir={tmp_path}/sweep",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "sweep"
    table = (sweep / "sweep.md").read_text()
    assert (sweep / "sweep.png").stat().st_size > 0
    for name in ("resnet18", "mobilenet_v3_small"):
        run = json.loads(next(sweep.glob(f"*_{name}/metrics.json")).read_text())
        assert run["macs"] == count_macs(zoo.create_model(name, num_classes=10), (3, 32, 32))
        assert f"`{name}`" in table
