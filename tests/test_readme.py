"""The README's model tables are generated from the model specs (`python scripts/flops_report.py --readme
README.md`): every registered model has its row, and each row's input size, parameter count and reference are
the ones its spec and its builder give today. GMACs are checked against the published figures in
tests/analysis/, not here (counting them all takes minutes)."""

import re
from pathlib import Path

import pytest
import torch

import zoo
from zoo.reference import reference_label
from zoo.registry import model_spec

README = Path(__file__).resolve().parents[1] / "README.md"


def table_rows(name: str) -> dict[str, list[str]]:
    text = README.read_text()
    match = re.search(rf"<!-- models:{name} -->\n(.*?)\n<!-- /models:{name} -->", text, re.S)
    assert match, f"README.md has no <!-- models:{name} --> table"
    rows = {}
    for line in match.group(1).splitlines()[2:]:  # header and rule
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def n_params(name: str, **kwargs) -> int:
    with torch.device("meta"):
        model = zoo.create_model(name, **kwargs)
    return sum(p.numel() for p in model.parameters())


def test_classifier_table_lists_every_classifier_as_its_spec_says():
    rows = table_rows("classifiers")
    assert sorted(rows) == zoo.list_models(task="classification")
    for name, (size, params, _gmacs, _gflops, reference) in rows.items():
        spec = model_spec(name)
        assert size == "×".join(map(str, spec.default_input_size)), name
        build = spec.published.build_kwargs if spec.published else {}
        assert int(params.replace(",", "")) == n_params(name, **build), name
        assert reference == reference_label(name), name


@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_detector_and_segmenter_table_lists_every_one_as_its_spec_says(task):
    rows = {n: cells for n, cells in table_rows("dense").items() if cells[0] == task}
    assert sorted(rows) == zoo.list_models(task=task)
    for name, (_task, size, classes, params, _gmacs, reference) in rows.items():
        assert size == "×".join(map(str, model_spec(name).default_input_size)), name
        assert int(params.replace(",", "")) == n_params(name, num_classes=int(classes)), name
        assert reference == reference_label(name), name
