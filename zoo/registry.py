"""The model registry: builders are registered under their function name and built by name.

@register_model
def resnet18(*, num_classes=1000, **kwargs): ...

zoo.list_models("resnet*")          # wildcards as in fnmatch
zoo.create_model("resnet18", num_classes=10)
zoo.create_model("resnet50", features_only=True, out_indices=(1, 2, 3))

Every builder has a task, "classification" unless registered otherwise
(``@register_model(task="detection")``), so ``list_models(task="classification")`` gives the classifiers.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Sequence

from torch import nn

__all__ = ["TASKS", "create_model", "is_model", "list_models", "model_task", "register_model"]

TASKS = ("classification", "detection", "segmentation")

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_TASK_OF: dict[str, str] = {}


def register_model(builder: Callable[..., nn.Module] | None = None, *, task: str = "classification"):
    """Register ``builder`` under its ``__name__``; registering a name twice is an error.

    Use bare (``@register_model``) for a classifier, or ``@register_model(task="detection")``.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _MODELS:
            raise ValueError(f"a model named {name!r} is already registered")
        _MODELS[name] = builder
        _TASK_OF[name] = task
        return builder

    return register if builder is None else register(builder)


def list_models(pattern: str | Sequence[str] = "*", *, task: str | None = None) -> list[str]:
    """Sorted names of the registered models matching ``pattern`` (fnmatch wildcards, or a list of them),
    optionally only those of one ``task``."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS} or None, got {task!r}")
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    return sorted(
        n for n in _MODELS if any(fnmatch.fnmatchcase(n, p) for p in patterns) and (task is None or _TASK_OF[n] == task)
    )


def is_model(name: str) -> bool:
    return name in _MODELS


def model_task(name: str) -> str:
    """The task ("classification", "detection" or "segmentation") the model ``name`` was registered for."""
    if name not in _MODELS:
        raise _unknown_model_error(name)
    return _TASK_OF[name]


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
