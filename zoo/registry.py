"""The model registry: builders are registered under their function name and built by name.

@register_model
def resnet18(*, num_classes=1000, **kwargs): ...

zoo.list_models("resnet*")          # wildcards as in fnmatch
zoo.create_model("resnet18", num_classes=10)
zoo.create_model("resnet50", features_only=True, out_indices=(1, 2, 3))
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Sequence

from torch import nn

__all__ = ["create_model", "is_model", "list_models", "register_model"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``builder`` under its ``__name__``; registering a name twice is an error."""
    name = builder.__name__
    if name in _MODELS:
        raise ValueError(f"a model named {name!r} is already registered")
    _MODELS[name] = builder
    return builder


def list_models(pattern: str | Sequence[str] = "*") -> list[str]:
    """Sorted names of the registered models matching ``pattern`` (fnmatch wildcards, or a list of them)."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return sorted(n for n in _MODELS if any(fnmatch.fnmatchcase(n, p) for p in patterns))


def is_model(name: str) -> bool:
    return name in _MODELS


def _unknown_model_error(name: object) -> ValueError:
    close = difflib.get_close_matches(str(name), list(_MODELS), n=5, cutoff=0.5)
    hint = f" Closest matches: {', '.join(close)}." if close else ""
    return ValueError(f"unknown model {name!r}.{hint} Available models: {', '.join(list_models())}")


def create_model(
    name: str,
    *,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    pretrained: bool = False,
    **kwargs,
) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` passed to its builder.

    ``features_only=True`` returns a :class:`~zoo.models.features.FeatureListNet` whose forward gives
    the stage feature maps listed in the model's ``feature_info`` (``out_indices`` selects them).
    Nothing is ever downloaded: ``pretrained=True`` is refused; load weights you have with
    :func:`zoo.load_reference_weights`.
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    if name not in _MODELS:
        raise _unknown_model_error(name)
    if pretrained:
        raise ValueError(
            "pretrained=True is not supported: zoo downloads nothing. Build the model, then load a "
            "torchvision/timm state_dict you have with zoo.load_reference_weights(model, state_dict)"
        )
    model = _MODELS[name](**kwargs)
    if features_only:
        from zoo.models.features import FeatureListNet

        return FeatureListNet(model, out_indices=out_indices)
    if out_indices is not None:
        raise ValueError("out_indices is only used with features_only=True")
    return model
