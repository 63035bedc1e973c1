"""Bad input to the FLOPs counter and its command line, as a user would hit it (issue 15): a clear error naming
what was expected and what came, or the right count — never a deep traceback; detectors and segmenters are
counted like classifiers."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torchvision

import zoo
from zoo.analysis.flops import count_flops
from zoo.flops import main as flops_main

ROOT = Path(__file__).resolve().parents[2]
PROG = "python -m zoo.flops"


@pytest.mark.parametrize(
    "input_size, error, message",
    [
        (64.5, TypeError, r"input_size must be an int S or a sequence .*got 64.5 \(float\)"),
        ("64", TypeError, r"got '64' \(str\)"),
        (True, TypeError, r"got True \(bool\)"),
        (None, TypeError, r"got None \(NoneType\)"),
        ((64, 64.0), TypeError, r"must hold ints, got \(64, 64.0\) \(holding float\)"),
        ((0, 32), ValueError, r"positive ints, got \(0, 32\)"),
        ((1, 3, 32, 32), ValueError, r"S, \(H, W\) or \(C, H, W\)"),
        ((1, 32, 32), ValueError, r"input_size: ResNet takes 3 input channels, got 1 in \(1, 32, 32\)"),
    ],
)
def test_count_flops_refuses_a_bad_input_size(input_size, error, message):
    model = zoo.create_model("resnet18")
    with pytest.raises(error, match=message):
        count_flops(model, input_size=input_size)


def _cli_json(capsys, *argv: str) -> dict:
    assert flops_main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_counts_a_detector_at_its_spec_input_size(capsys):
    name = "yolov3_mobilenet_v2"
    assert zoo.model_spec(name).default_input_size == (416, 416)
    small = _cli_json(capsys, name, "--input-size", "64")
    default = _cli_json(capsys, name)
    assert small["input_size"] == [3, 64, 64] and default["input_size"] == [3, 416, 416]
    assert default["macs"] == default["macs_closed_form"] and small["macs"] == small["macs_closed_form"]
    # Fully convolutional, every map an exact 1/s of the input: each layer's count grows with the area, (416/64)².
    assert default["macs"] * 64**2 == small["macs"] * 416**2
    assert default["params"] == small["params"] == sum(p.numel() for p in zoo.create_model(name).parameters())


def test_cli_counts_a_segmenter_at_its_builders_class_count(capsys):
    # The builder's 21 classes, not a classifier's 1000: the parameters are torchvision's model's.
    result = _cli_json(capsys, "deeplabv3_mobilenet_v3_large", "--input-size", "64")
    reference = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21
    )
    assert result["params"] == sum(p.numel() for p in reference.parameters())
    assert result["input_size"] == [3, 64, 64]


def test_cli_detector_as_a_user_runs_it():
    result = subprocess.run(
        [sys.executable, "-m", "zoo.flops", "yolov3_mobilenet_v2", "--input-size", "64", "--depth", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "yolov3_mobilenet_v2 at input 3×64×64" in result.stdout and "(agrees)" in result.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["yolov3_mobilenet_v2", "--input-size", "8"], r"yolov3_mobilenet_v2 needs at least 32×32, got 8×8"),
        (["resnet18", "--input-size", "1", "64", "64"], r"--input-size takes S or H W .*got \[1, 64, 64\]"),
        (["resnet18", "--input-size", "0"], r"positive ints, got \[0\]"),
        (["resnet18", "--depth", "0"], r"--depth must be a positive number of name levels, got 0"),
        (["resnet18", "--num-classes", "-1"], r"num_classes must be an int >= 0 .*got -1"),
        (["faster_rcnn_resnet18_fpn", "--num-classes", "0"], r"num_classes: expected an int >= 2 .*got 0"),
        (["resnet19"], r"unknown model 'resnet19'\. Closest matches"),
    ],
)
def test_cli_bad_arguments_are_one_error_line(capsys, argv, message):
    assert flops_main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{PROG}: error: "), captured.err
    assert re.search(message, lines[0]), lines[0]
    assert captured.out == ""


def test_cli_bad_argument_as_a_user_runs_it():
    result = subprocess.run(
        [sys.executable, "-m", "zoo.flops", "yolov3_mobilenet_v2", "--input-size", "8"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"{PROG}: error: --input-size: yolov3_mobilenet_v2 needs at least 32×32, got 8×8"
    ]
