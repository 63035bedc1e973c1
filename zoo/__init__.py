"""zoo: classic vision architectures from scratch, verified against torchvision and timm."""

from zoo import models  # noqa: F401  (registers the builders)
from zoo.registry import create_model, is_model, list_models, model_spec, register_model
from zoo.weights import load_reference_weights


def __getattr__(name: str):
    # The measuring tools need fvcore: loaded on first use, so that `import zoo` stays light.
    if name == "count_flops":
        from zoo.analysis.flops import count_flops

        return count_flops
    if name == "receptive_field":
        from zoo.analysis.receptive_field import receptive_field

        return receptive_field
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


__all__ = [
    "count_flops",
    "receptive_field",
    "create_model",
    "is_model",
    "list_models",
    "load_reference_weights",
    "model_spec",
    "register_model",
]
__version__ = "0.1.0"
