"""zoo: classic vision architectures from scratch, verified against torchvision and timm."""

from zoo import models  # noqa: F401  (registers the builders)
from zoo.analysis import count_flops, receptive_field
from zoo.registry import create_model, is_model, list_models, register_model
from zoo.weights import load_reference_weights

__all__ = [
    "count_flops",
    "receptive_field",
    "create_model",
    "is_model",
    "list_models",
    "load_reference_weights",
    "register_model",
]
__version__ = "0.1.0"
