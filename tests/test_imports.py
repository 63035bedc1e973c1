"""Dependencies run one way: the library (zoo, zoo.layers, zoo.ops, zoo.models, zoo.fundamentals, zoo.metrics)
imports no training code (Lightning, Hydra) and no analysis code (fvcore) until it is asked for."""

import subprocess
import sys

import pytest

HEAVY = ("lightning", "pytorch_lightning", "lightning_fabric", "hydra", "omegaconf", "fvcore")


def _imported_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return result.stdout.split()


@pytest.mark.parametrize("package", ["zoo", "zoo.layers", "zoo.ops", "zoo.models", "zoo.fundamentals", "zoo.metrics"])
def test_library_imports_no_training_or_analysis_code(package):
    loaded = _imported_after(f"import {package}")
    assert not [m for m in HEAVY if m in loaded], f"import {package} loads {[m for m in HEAVY if m in loaded]}"


def test_measuring_tools_load_on_first_use():
    loaded = _imported_after("import zoo; zoo.count_flops")
    assert "fvcore" in loaded
