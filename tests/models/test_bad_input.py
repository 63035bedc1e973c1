"""Bad input to the models and the registry, as a user would hit it (issue 15): a clear error naming what was
expected and what came, or the right answer — never torch's dtype RuntimeError from deep in a convolution or a
target silently trained as something else."""

import pytest
import torch

import zoo
from zoo.models.base import check_image_batch
from zoo.models.detection.targets import check_detection_target

CLASSIFIERS = zoo.list_models(task="classification")

# --- registry ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, message",
    [
        (5, "pattern must be a str or a list of str, got int"),
        (None, "got NoneType"),
        (b"resnet*", "got bytes"),
        (["resnet*", 5], "got a list holding int"),
    ],
)
def test_list_models_refuses_a_pattern_that_is_no_str(pattern, message):
    with pytest.raises(TypeError, match=message):
        zoo.list_models(pattern)


def test_list_models_takes_any_collection_of_patterns():
    assert zoo.list_models(("resnet18", "vgg11")) == zoo.list_models({"vgg11", "resnet18"}) == ["resnet18", "vgg11"]


# --- classifiers: dtype and channels, in forward and forward_features ----------------------------------------------


def _on_meta(name: str) -> tuple[torch.nn.Module, tuple[int, int]]:
    """Built on the meta device: every check runs before any layer computes."""
    with torch.device("meta"):
        model = zoo.create_model(name).eval()
    return model, tuple(max(64, m) for m in model.min_input_size)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_an_input_of_another_dtype_than_the_weights_is_a_type_error(name):
    model, size = _on_meta(name)
    for dtype in (torch.float64, torch.float16):
        x = torch.empty(1, model.in_chans, *size, device="meta", dtype=dtype)
        for call in (model, model.forward_features):
            with pytest.raises(TypeError, match=rf"has torch.float32 weights, got a {dtype} input: .*x\.float\(\)"):
                call(x)
    x = torch.empty(1, model.in_chans, *size, device="meta", dtype=torch.float32)
    with pytest.raises(TypeError, match=r"has torch.float64 weights, got a torch.float32 input.*model\.to\(torch"):
        model.double()(x)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_forward_features_checks_the_channels_as_forward_does(name):
    model, size = _on_meta(name)
    x = torch.empty(2, model.in_chans + 1, *size, device="meta")
    for call in (model, model.forward_features):
        with pytest.raises(ValueError, match=rf"expects {model.in_chans} input channels .*got {model.in_chans + 1}"):
            call(x)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_converting_as_the_error_says_runs_and_agrees_across_precisions(name):
    model = zoo.create_model(name, num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        reference = model.double()(x)  # model.to(torch.float64)
        model.float()
        torch.testing.assert_close(model(x.float()).double(), reference, rtol=1e-4, atol=1e-4)  # x.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts inputs and weights itself: no refusal
            torch.testing.assert_close(model(x.bfloat16()).double(), reference, rtol=0.1, atol=0.1)


def test_nan_pixels_give_nan_logits_as_documented():
    assert "NaN" in check_image_batch.__doc__
    model = zoo.create_model("resnet18", num_classes=10).eval()
    x = torch.zeros(1, 3, 64, 64)
    x[0, 0, 10, 10] = torch.nan
    with torch.no_grad():
        assert model(x).isnan().all()


# --- detection targets: Faster R-CNN's background label, YOLO boxes outside the image ----------------------------

BOXES = torch.tensor([[1.0, 2.0, 10.0, 12.0], [20.0, 20.0, 30.0, 30.0]])


def test_faster_rcnn_refuses_the_background_label_in_a_target():
    with pytest.raises(ValueError, match=r"image 3: label 0 is the background class.*1\.\.90\), got \[0, 5\]"):
        check_detection_target({"boxes": BOXES, "labels": torch.tensor([5, 0])}, 3, 91, background_label=0)
    assert check_detection_target({"boxes": BOXES, "labels": torch.tensor([5, 90])}, 3, 91, background_label=0)
    with torch.device("meta"):
        model = zoo.create_model("faster_rcnn_resnet18_fpn", num_classes=11).train()
    images = torch.empty(2, 3, 64, 64, device="meta")
    good = {"boxes": BOXES, "labels": torch.tensor([1, 10])}
    with pytest.raises(ValueError, match=r"target of image 1: label 0 is the background class.*1\.\.10\)"):
        model(images, [good, {"boxes": BOXES, "labels": torch.tensor([0, 1])}])


@pytest.mark.parametrize(
    "box, outside",
    [
        ([70.0, 0.0, 90.0, 10.0], True),  # right of a 64-wide image
        ([0.0, 50.0, 10.0, 60.0], True),  # below a 48-high image
        ([-20.0, 5.0, -1.0, 9.0], True),  # left of it
        ([64.0, 0.0, 70.0, 10.0], True),  # touching the right border only
        ([60.0, 40.0, 90.0, 60.0], False),  # partly inside: its centre goes to the nearest border cell
        ([0.0, 0.0, 64.0, 48.0], False),  # the whole image
    ],
)
def test_yolo_refuses_a_box_entirely_outside_the_image(box, outside):
    target = {"boxes": torch.cat([BOXES, torch.tensor([box])]), "labels": torch.tensor([1, 2, 3])}
    if not outside:
        check_detection_target(target, 0, 11, image_size=(48, 64))
        return
    with pytest.raises(ValueError, match=r"image 0: box 2 .* lies entirely outside the image of 48×64 \(H×W\)"):
        check_detection_target(target, 0, 11, image_size=(48, 64))


def test_yolov3_checks_its_targets_against_each_images_size():
    with torch.device("meta"):
        model = zoo.create_model("yolov3_mobilenet_v2", num_classes=11).train()
    images = [torch.empty(3, 64, 64, device="meta"), torch.empty(3, 32, 64, device="meta")]  # padded to 64×64
    inside = {"boxes": BOXES, "labels": torch.tensor([1, 2])}
    in_padding = {"boxes": torch.tensor([[0.0, 40.0, 10.0, 50.0]]), "labels": torch.tensor([1])}
    with pytest.raises(ValueError, match=r"target of image 1: box 0 .* outside the image of 32×64 \(H×W\)"):
        model(images, [inside, in_padding])


@pytest.mark.parametrize(
    "name",
    [
        "yolov3_mobilenet_v2",
        "centernet_resnet18",
        "faster_rcnn_mobilenet_v3_large_fpn",
        "unet",
        "deeplabv3_mobilenet_v3_large",
    ],
)
def test_detectors_and_segmenters_name_the_dtype_they_expect(name):
    model = zoo.create_model(name, num_classes=3).eval()
    with pytest.raises(TypeError, match=r"float32 weights, got a torch.float64 input"):
        model(torch.rand(1, 3, 64, 64, dtype=torch.float64))
    with torch.no_grad():
        model(torch.rand(1, 3, 64, 64))  # float32 passes
