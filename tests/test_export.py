"""torch.export (and ONNX where installed) of every registered classifier equals the eager model."""

import subprocess
import sys

import pytest
import torch
from train_helpers import ROOT

import zoo
from zoo.export import export_onnx, export_program, max_export_error, model_from_checkpoint, onnx_available

CLASSIFIERS = zoo.list_models(task="classification")


def _small(name):
    model = zoo.create_model(name, num_classes=5).eval()
    return model, max(32, *model.min_input_size)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_torch_export_equals_eager(name):
    torch.manual_seed(0)
    model, size = _small(name)
    program = export_program(model, size, batch_size=2)
    assert max_export_error(model, program, size, batch_size=3) <= 1e-4  # another batch size: the dim is dynamic


ONNX_QUICK = ("resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "inception_v3")


@pytest.mark.skipif(not onnx_available(), reason="onnx/onnxscript not installed (pip install -e .[onnx])")
@pytest.mark.parametrize(
    "name", [n if n in ONNX_QUICK else pytest.param(n, marks=pytest.mark.slow) for n in CLASSIFIERS]
)
def test_onnx_export_equals_eager(name, tmp_path):
    pytest.importorskip("onnxruntime")
    model, size = _small(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", size)
    assert max_export_error(model, path, size) <= 1e-4


def test_export_script_on_a_train_checkpoint(tmp_path):
    model = zoo.create_model("resnet18", num_classes=7, in_chans=1)
    checkpoint = tmp_path / "run" / "checkpoints" / "best.ckpt"
    checkpoint.parent.mkdir(parents=True)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "pytorch-lightning_version": "2"}, checkpoint)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export.py"), "resnet18", str(checkpoint), "--image-size", "32"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "best.pt2" in result.stdout
    program = torch.export.load(str(checkpoint.with_suffix(".pt2")))
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(program.module()(x), model.eval()(x), atol=1e-4, rtol=0)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(zoo.create_model("resnet18", num_classes=3).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit mobilenet_v2"):
        model_from_checkpoint("mobilenet_v2", path)
    assert isinstance(model_from_checkpoint("resnet18", path), torch.nn.Module)
