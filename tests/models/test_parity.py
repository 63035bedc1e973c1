"""Every registered model with a counterpart (its spec's ``reference``) equals it: the same parameter count and,
after loading the counterpart's random state_dict, the same eval outputs (1e-5) at the spec's test input size.

A new model declaring ``reference=`` at ``@register_model`` is checked here the moment it is registered.
Detectors compare their parameter counts here; their detections are compared in tests/models/detection/.
"""

import pytest
import torch
from reference_models import randomize_

import zoo
from zoo.reference import build_reference
from zoo.registry import model_spec

# Above this many parameters, a variant is checked under `pytest -m slow`; one per family stays in the default run.
HEAVY_PARAMS = 50_000_000
FAMILY_REPRESENTATIVES = {"alexnet", "vgg11"}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _param(name: str):
    published = model_spec(name).published
    heavy = published is not None and (published.params or 0) > HEAVY_PARAMS and name not in FAMILY_REPRESENTATIVES
    return pytest.param(name, marks=pytest.mark.slow) if heavy else name


WITH_REFERENCE = [_param(n) for n in zoo.list_models() if model_spec(n).reference is not None]


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    output = model(x)
    return output["out"] if isinstance(output, dict) else output  # torchvision's segmenters return a dict


@pytest.mark.parametrize("name", WITH_REFERENCE)
def test_equals_its_reference(name):
    spec = model_spec(name)
    # torchvision's own initialisation of these (scipy's truncated normal, 100M+ weights) is slow and then
    # overwritten by randomize_ anyway: skip it.
    fast = {"init_weights": False} if name.startswith(("vgg", "googlenet", "inception_v3")) else {}
    reference = randomize_(build_reference(name, **fast)).eval()
    with torch.device("meta"):  # the strict load below fills every parameter and buffer
        ours = zoo.create_model(name, **spec.reference_build_kwargs)
    ours.to_empty(device="cpu")
    assert n_params(ours) == n_params(reference)
    zoo.load_reference_weights(ours, reference.state_dict())
    ours.eval()
    if spec.task == "detection":
        return  # detections need images, targets and thresholds: compared in tests/models/detection/
    x = torch.randn(2, 3, *spec.test_input_size)
    with torch.no_grad():
        expected = _outputs(reference, x)
        # 1e-5, relative to the outputs' scale (random weights give logits in the hundreds for deep nets).
        atol = 1e-5 * max(1.0, expected.abs().max().item())
        torch.testing.assert_close(_outputs(ours, x), expected, rtol=1e-5, atol=atol)
