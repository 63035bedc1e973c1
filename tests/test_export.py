"""torch.export and ONNX of every registered model equal the eager model (detectors: the same detections)."""

import pytest
import torch
from train_helpers import ROOT, slow_if_large

import zoo
from zoo.export import export_onnx, export_program, max_export_error, model_from_checkpoint, onnx_available

CLASSIFIERS = zoo.list_models(task="classification")


def _small(name):
    model = zoo.create_model(name, num_classes=5).eval()
    return model, max(32, *model.min_input_size)


@pytest.mark.parametrize("name", slow_if_large(CLASSIFIERS))
def test_torch_export_equals_eager(name):
    torch.manual_seed(0)
    model, size = _small(name)
    program = export_program(model, size, batch_size=2)
    assert max_export_error(model, program, size, batch_size=3) <= 1e-4  # another batch size: the dim is dynamic


ONNX_QUICK = ("resnet18", "mobilenet_v3_small")


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
    assert export_script().main(["resnet18", str(checkpoint), "--image-size", "32"]) == 0
    program = torch.export.load(str(checkpoint.with_suffix(".pt2")))
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(program.module()(x), model.eval()(x), atol=1e-4, rtol=0)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(zoo.create_model("resnet18", num_classes=3).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit mobilenet_v2"):
        model_from_checkpoint("mobilenet_v2", path)
    assert isinstance(model_from_checkpoint("resnet18", path), torch.nn.Module)


# --- detectors and segmenters: post-processing inside the graph ---------------------------------------------
DENSE = zoo.list_models(task="detection") + zoo.list_models(task="segmentation")
DENSE_HEAVY = {
    "yolov1",
    "faster_rcnn_resnet50_fpn",
    "mask_rcnn_resnet50_fpn",
    "retinanet_resnet50_fpn",
    "fcos_resnet50_fpn",
    "yolov3",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "deeplabv3plus_resnet50",
    "detr_resnet50",  # 11 s: ResNet-50 and six + six transformer layers
    "ssd300_vgg16",  # 16 s: VGG-16 at 300×300 and NMS over 90 classes × 400 candidates
}
DENSE_ONNX_QUICK = {"yolov3_mobilenet_v2"}  # NMS inside the graph; the others under -m slow


def _dense_model(name):
    """Random weights, spread out (randomize_) so that scores differ and a mis-ordered detection cannot hide in a
    tie; the class biases (YOLO's, RetinaNet's, FCOS's) spread further, or every random score sits under its
    threshold."""
    from reference_models import randomize_

    model = randomize_(zoo.create_model(name, num_classes=5)).eval()
    with torch.no_grad():
        for key, value in model.named_parameters():
            if key.endswith(("pred.bias", "cls_logits.bias")):
                value.normal_(0, 2, generator=torch.Generator().manual_seed(3))
    return model


def _scene(size=64):
    from zoo.data.synthetic import render_scenes

    return render_scenes(1, size, 3, generator=torch.Generator().manual_seed(1)).images


def _dense_params(chosen):
    return [n if n in chosen else pytest.param(n, marks=pytest.mark.slow) for n in DENSE]


@pytest.mark.parametrize("name", _dense_params(set(DENSE) - DENSE_HEAVY))
def test_detector_and_segmenter_torch_export_equals_eager(name):
    model, scene = _dense_model(name), _scene()
    program = export_program(model, 64)
    expected = model(scene)
    if model.spec.task == "detection":
        assert len(expected[0]["boxes"]) > 0  # the comparison below compares detections, not two empty lists
    assert max_export_error(model, program, 64, images=scene) <= 1e-4


@pytest.mark.skipif(not onnx_available(), reason="onnx/onnxscript not installed (pip install -e .[onnx])")
@pytest.mark.parametrize("name", _dense_params(DENSE_ONNX_QUICK))
def test_detector_and_segmenter_onnx_equals_eager(name, tmp_path):
    pytest.importorskip("onnxruntime")
    model, scene = _dense_model(name), _scene()
    path = export_onnx(model, tmp_path / f"{name}.onnx", 64)
    # Boxes to 1e-4 of the image size (the error is in units of the largest coordinate), same labels, scores.
    assert max_export_error(model, path, 64, images=scene) <= 1e-4


def test_a_different_number_of_detections_is_an_export_error():
    from zoo.export import _leaf_error

    assert _leaf_error(torch.zeros(3, 4), torch.zeros(2, 4)) == float("inf")
    assert _leaf_error(torch.tensor([1, 2]), torch.tensor([1, 3])) == float("inf")
    assert _leaf_error(torch.tensor([10.0, 20.0]), torch.tensor([10.0, 20.001])) < 1e-4


def test_detections_are_compared_as_sets_of_the_same_labels():
    from zoo.export import _detection_error

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    output = [{"boxes": boxes, "scores": torch.tensor([0.5, 0.5]), "labels": torch.tensor([1, 2])}]
    expected = [boxes, torch.tensor([0.5, 0.5]), torch.tensor([1, 2])]
    swapped = [boxes.flip(0), torch.tensor([0.5, 0.5]), torch.tensor([2, 1])]  # tied, in another order
    assert _detection_error(swapped, expected, output) == 0.0
    relabelled = [boxes.flip(0), torch.tensor([0.5, 0.5]), torch.tensor([1, 2])]  # the labels do not follow
    assert _detection_error(relabelled, expected, output) > 0.5  # each box now pairs with the other one
    assert _detection_error([boxes[:1], torch.tensor([0.5]), torch.tensor([1])], expected, output) == float("inf")


def test_export_script_on_a_detector_checkpoint_into_a_new_folder(tmp_path):
    """A YOLO run's checkpoint: the class count is read from the weights, the output folder is created, and the
    exported program gives the eager detections."""
    model = zoo.create_model("yolov3_mobilenet_v2", num_classes=3)
    checkpoint = tmp_path / "best.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, checkpoint)
    out = tmp_path / "not" / "yet" / "there" / "yolo"
    argv = ["yolov3_mobilenet_v2", str(checkpoint), "--image-size", "64", "--out", str(out)]
    assert export_script().main(argv) == 0
    program = torch.export.load(str(out.with_suffix(".pt2")))
    assert max_export_error(model.eval(), program, 64, images=_scene()) <= 1e-4


def export_script():
    """scripts/export.py as a module, to call its main() in this process (a subprocess costs 20 s of imports)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("export_script", ROOT / "scripts" / "export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_script_bad_arguments_are_one_error_line(tmp_path, capsys):
    model = zoo.create_model("resnet18", num_classes=4)
    checkpoint = tmp_path / "best.ckpt"
    torch.save(model.state_dict(), checkpoint)
    for args in (["resnet18", str(tmp_path / "missing.ckpt")], ["resnet50", str(checkpoint)]):
        assert export_script().main([*args, "--image-size", "32"]) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and "Traceback" not in error and error.count("\n") == 1, error


def test_infer_num_classes_reads_every_kind_of_head():
    from zoo.export import infer_num_classes

    for name, classes in (("resnet18", 7), ("yolov3_mobilenet_v2", 3), ("centernet_resnet18", 4), ("unet", 5)):
        with torch.device("meta"):
            state = zoo.create_model(name, num_classes=classes).state_dict()
        assert infer_num_classes(name, state) == classes, name
