"""The counter: fvcore against the closed-form formulas, published figures, the CLI and the report."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from fvcore.nn import FlopCountAnalysis
from reference_models import reference_model
from torch import nn
from train_helpers import slow_if_large

import zoo
from zoo.analysis import formulas
from zoo.analysis.flops import count_flops
from zoo.flops import main as flops_main
from zoo.registry import TORCHVISION_DOCS, model_spec

PUBLISHED = {name: model_spec(name).published for name in zoo.list_models() if model_spec(name).published}

ROOT = Path(__file__).resolve().parents[2]


def fvcore_macs(module: nn.Module, x: torch.Tensor) -> int:
    analysis = FlopCountAnalysis(module, x)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(analysis.total())


@pytest.mark.parametrize("name", slow_if_large(zoo.list_models(task="classification")))
def test_fvcore_equals_closed_form_for_every_model(name):
    spec = model_spec(name)
    # Built as the reference it is compared with (a ViT at its reference's test image size).
    model = zoo.create_model(name, **spec.reference_build_kwargs).eval()
    result = count_flops(model, spec.test_input_size)
    assert result.macs == result.macs_closed_form
    assert all(row.macs == row.macs_closed_form for row in result.layers), [
        row for row in result.layers if row.macs != row.macs_closed_form
    ]
    assert result.params == sum(p.numel() for p in model.parameters())
    if spec.reference is not None:
        assert result.params == sum(p.numel() for p in reference_model(name).parameters())
    assert sum(row.params for row in result.layers) == result.params
    assert sum(row.share for row in result.layers) == pytest.approx(1.0)


@pytest.mark.parametrize("name", slow_if_large(sorted(PUBLISHED)))
def test_published_figures(name):
    published = PUBLISHED[name]
    model = zoo.create_model(name, **published.build_kwargs)
    result = count_flops(model, model_spec(name).default_input_size)
    if published.params is not None:
        assert result.params == published.params
    assert abs(result.macs / 1e9 - published.gmacs) <= published.gmacs_tolerance * published.gmacs
    if published.conv_linear_exact:
        conv_linear = sum(r.macs for r in result.layers if r.type in ("Conv2d", "Linear")) / 1e9
        assert abs(conv_linear - published.gmacs) <= 0.0005 + 1e-9  # published to 3 decimals


@pytest.mark.parametrize("name", [n for n, p in PUBLISHED.items() if p.source == TORCHVISION_DOCS])
def test_published_table_copies_torchvision_meta(name):
    meta = torchvision.models.get_model_weights(name).DEFAULT.meta
    assert PUBLISHED[name].params == meta["num_params"]
    assert PUBLISHED[name].gmacs == pytest.approx(meta["_ops"], abs=1e-9)


SINGLE_LAYERS = [
    (nn.Conv2d(8, 16, 3, stride=2, padding=1), (2, 8, 15, 17)),
    (nn.Conv2d(8, 16, (3, 5), stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=4, bias=True), (1, 8, 20, 21)),
    (nn.Conv2d(12, 12, 5, padding=2, groups=12), (1, 12, 9, 9)),  # depthwise
    (nn.ConvTranspose2d(8, 6, 2, stride=2), (1, 8, 7, 5)),
    (nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1, groups=2), (1, 8, 6, 6)),
    (nn.Linear(20, 7), (3, 20)),
    (nn.Linear(20, 7, bias=False), (2, 5, 20)),
    (nn.BatchNorm2d(8).eval(), (2, 8, 5, 5)),
    (nn.BatchNorm2d(8, affine=False).eval(), (2, 8, 5, 5)),
    (nn.BatchNorm2d(8).train(), (2, 8, 5, 5)),
    (nn.GroupNorm(2, 8), (1, 8, 4, 4)),
    (nn.LayerNorm(6), (2, 3, 6)),
    (nn.AdaptiveAvgPool2d(1), (2, 8, 6, 6)),
    (nn.Upsample(scale_factor=2, mode="nearest"), (1, 3, 5, 5)),
    (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), (1, 3, 5, 5)),
]


@pytest.mark.parametrize(
    "layer, shape", SINGLE_LAYERS, ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else ""
)
def test_single_layer_formula_equals_fvcore(layer, shape):
    x = torch.randn(shape)
    training = layer.training
    expected = fvcore_macs(layer.train(training), x)
    output = layer.train(training)(x)
    assert formulas.layer_macs(layer.train(training), shape, tuple(output.shape)) == expected


def test_conv_formulas_by_hand():
    # 8→16 channels, 3×3, stride 2, pad 1 on 15×17: H_out = 8, W_out = 9.
    assert formulas.conv2d_output_size(15, 3, 2, 1) == 8 and formulas.conv2d_output_size(17, 3, 2, 1) == 9
    assert formulas.conv2d_macs((1, 8, 15, 17), 16, 3, 2, 1) == 8 * 9 * 16 * 9 * 8
    assert formulas.conv2d_params(8, 16, 3, groups=4, bias=True) == 16 * 9 * 2 + 16
    assert formulas.conv2d_params(8, 16, 3, bias=True) == sum(p.numel() for p in nn.Conv2d(8, 16, 3).parameters())


@pytest.mark.parametrize("c_in, c_out, k", [(32, 64, 3), (64, 128, 5), (16, 16, 7)])
def test_depthwise_separable_saving(c_in, c_out, k):
    x = torch.randn(1, c_in, 14, 14)
    standard = fvcore_macs(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), x)
    separable = fvcore_macs(
        nn.Sequential(
            nn.Conv2d(c_in, c_in, k, padding=k // 2, groups=c_in, bias=False), nn.Conv2d(c_in, c_out, 1, bias=False)
        ),
        x,
    )
    assert separable / standard == pytest.approx(1 / c_out + 1 / k**2, rel=1e-12)


def test_doubling_the_input_side():
    small, large = count_flops("resnet18", 64), count_flops("resnet18", 128)
    assert small.params == large.params
    for a, b in zip(small.layers, large.layers, strict=True):
        if a.type == "Conv2d":
            assert b.macs == 4 * a.macs, a.name


def test_models_returning_lists_and_dicts_are_counted():
    backbone = zoo.create_model("resnet18", features_only=True)
    full = count_flops("resnet18", 64)
    result = count_flops(backbone, 64)
    assert result.macs == result.macs_closed_form
    # The backbone is the classifier minus pooling and classifier head.
    assert result.macs == full.macs - sum(r.macs for r in full.layers if r.name.startswith("head."))

    class DictOutput(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            y = self.body(x)
            return {"out": y, "aux": [y.mean()]}

    result = count_flops(DictOutput(), (3, 8, 8))
    assert result.macs == result.macs_closed_form == 8 * 8 * 4 * 9 * 3


def test_input_size_forms_and_errors():
    assert count_flops("resnet18", (96, 64)).input_size == (3, 96, 64)
    assert count_flops("resnet18", 32, in_chans=1).input_size == (1, 32, 32)
    with pytest.raises(ValueError, match="input_size must be"):
        count_flops("resnet18", (0, 32))


def test_uncounted_operators_are_reported():
    result = count_flops("seresnet18", 32)
    assert result.unsupported_ops["aten::max_pool2d"] == 1
    assert result.unsupported_ops["aten::sigmoid"] == 8  # one SE gate per block


def test_cli_json(capsys):
    assert flops_main(["resnet18", "--json", "--input-size", "96"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["model"] == "resnet18" and payload["input_size"] == [3, 96, 96]
    assert payload["macs"] == payload["macs_closed_form"] == count_flops("resnet18", 96).macs
    assert payload["flops"] == 2 * payload["macs"]
    assert {"params", "unsupported_ops"} <= set(payload)


def test_cli_table_and_errors(capsys):
    assert flops_main(["resnet18", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "layer3" in out and "agrees" in out and "FLOPs = 2×MACs" in out
    assert flops_main(["resnet19"]) == 2
    assert "Closest matches" in capsys.readouterr().err


def test_cli_receptive_field(capsys):
    assert flops_main(["resnet18", "--rf"]) == 0
    out = capsys.readouterr().out
    # ResNet-18 layer1: stem 7×7/2 (r 7, j 2), max-pool 3×3/2 (r 11, j 4), four 3×3 convs (+8 each) → 43.
    assert any(line.split()[:3] == ["layer1", "4", "43"] for line in out.splitlines())
    assert flops_main(["resnet18", "--rf", "--json"]) == 0
    stages = json.loads(capsys.readouterr().out)["receptive_field"]
    assert [s["reduction"] for s in stages] == [4, 8, 16, 32] and stages[0]["size"] == [43, 43]


def test_top_level_names():
    assert zoo.count_flops is count_flops
    assert zoo.receptive_field(zoo.create_model("resnet18"), (3, 64, 64)).stages()[0].geometry.size == (43, 43)


def test_cli_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "zoo.flops", "resnet18", "--json"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["macs"] == count_flops("resnet18").macs


def test_report_script(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "flops_report.py"), "--out", str(tmp_path), "--pattern", "resnet18"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "flops_report.csv").open()))
    assert [r["model"] for r in rows] == ["resnet18"]
    assert int(rows[0]["params"]) == 11_689_512 and rows[0]["closed_form_agrees"] == "True"
    assert "| `resnet18` |" in (tmp_path / "flops_report.md").read_text()
    assert (tmp_path / "flops_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
