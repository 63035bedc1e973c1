"""The model registry: builders are registered under their function name and built by name.

@register_model
def resnet18(*, num_classes=1000, **kwargs): ...

zoo.list_models("resnet*")          # wildcards as in fnmatch
zoo.create_model("resnet18", num_classes=10)
zoo.create_model("resnet50", features_only=True, out_indices=(1, 2, 3))

Every builder is registered with its :class:`ModelSpec`, the facts the rest of the zoo reads from here
and nowhere else: the task ("classification" unless ``@register_model(task="detection")``), the input
sizes (published, smallest accepted, small test size), the counterpart it must equal (torchvision, timm,
smp, Hugging Face transformers), the paper and its published figures. ``model_spec("resnet18")`` returns
them; tests, the FLOPs report, the README tables and the training configs read them.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from torch import nn

__all__ = [
    "REFERENCE_LIBRARIES",
    "TASKS",
    "TORCHVISION_DOCS",
    "ModelSpec",
    "Published",
    "create_model",
    "is_model",
    "list_models",
    "model_spec",
    "model_task",
    "register_model",
]

TASKS = ("classification", "detection", "segmentation")
REFERENCE_LIBRARIES = ("torchvision", "timm", "smp", "transformers")
TORCHVISION_DOCS = "torchvision weights meta (num_params, _ops)"


@dataclass(frozen=True)
class Published:
    """Published parameter and compute figures, with their source and the tolerance they are checked to.

    torchvision documents, per weights entry, ``num_params`` (exact) and ``_ops`` ("GFLOPS", in fact giga
    multiply-adds of the convolutions and linear layers, to 3 decimals). fvcore also counts batch norm,
    pooling and the like, so the fvcore total is compared loosely and the conv + linear subtotal tightly.
    """

    params: int | None  # exact, where published
    gmacs: float  # giga multiply-adds at the model's default input size
    source: str
    gmacs_tolerance: float  # relative tolerance of the fvcore total against `gmacs`
    conv_linear_exact: bool = False  # True: the conv + linear subtotal must equal `gmacs` to rounding
    build_kwargs: Mapping = field(default_factory=dict)  # how the published variant is built


@dataclass(frozen=True)
class ModelSpec:
    """What is known about a registered model, declared once at ``@register_model(...)``.

    ``reference`` is ``(library, name)``: the counterpart the model must equal in parameter count and, after
    loading its state_dict, in outputs; ``reference_kwargs`` are passed when building it, and
    ``reference_build_kwargs`` when building the zoo model it is compared with (where the reference's builder,
    without pretrained weights, picks another setting than ours, e.g. ordinary rather than frozen batch norm).
    ``test_input_size`` is the small (H, W) the parametrised tests run at.
    """

    name: str
    task: str = "classification"
    default_input_size: tuple[int, int] = (224, 224)
    min_input_size: tuple[int, int] = (32, 32)
    test_input_size: tuple[int, int] = (64, 64)
    reference: tuple[str, str] | None = None
    reference_kwargs: Mapping = field(default_factory=dict)
    reference_build_kwargs: Mapping = field(default_factory=dict)
    paper: str | None = None
    published: Published | None = None


_MODELS: dict[str, Callable[..., nn.Module]] = {}
_SPECS: dict[str, ModelSpec] = {}


def _size(value: object, what: str) -> tuple[int, int]:
    size = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ValueError(f"{what} must be a positive int or an (H, W) pair of them, got {value!r}")
    return tuple(size)


def _reference(reference: str | None, name: str) -> tuple[str, str] | None:
    """``"torchvision"`` (the same name there) or ``"timm:legacy_xception"`` → ``(library, name)``."""
    if reference is None:
        return None
    library, _, reference_name = reference.partition(":")
    if library not in REFERENCE_LIBRARIES:
        raise ValueError(
            f"reference must name one of {REFERENCE_LIBRARIES} (as 'timm' or 'timm:name'), got {reference!r}"
        )
    return library, reference_name or name


def register_model(
    builder: Callable[..., nn.Module] | None = None,
    *,
    task: str = "classification",
    input_size: int | tuple[int, int] = 224,
    min_input_size: int | tuple[int, int] = 32,
    test_input_size: int | tuple[int, int] | None = None,
    reference: str | None = None,
    reference_kwargs: Mapping | None = None,
    reference_build_kwargs: Mapping | None = None,
    paper: str | None = None,
    published: Published | None = None,
):
    """Register ``builder`` under its ``__name__`` with its :class:`ModelSpec`; a name registered twice is an
    error. Use bare (``@register_model``) or with the spec's facts (``@register_model(reference="torchvision",
    published=Published(...))``). ``test_input_size`` defaults to 64 px, or the minimum if that is larger.

    The built model carries the spec as ``model.spec``.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    minimum = _size(min_input_size, "min_input_size")

    def register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _MODELS:
            raise ValueError(f"a model named {name!r} is already registered")
        spec = ModelSpec(
            name=name,
            task=task,
            default_input_size=_size(input_size, "input_size"),
            min_input_size=minimum,
            test_input_size=_size(test_input_size or tuple(max(64, m) for m in minimum), "test_input_size"),
            reference=_reference(reference, name),
            reference_kwargs=dict(reference_kwargs or {}),
            reference_build_kwargs=dict(reference_build_kwargs or {}),
            paper=paper,
            published=published,
        )

        @functools.wraps(builder)
        def build(**kwargs) -> nn.Module:
            model = builder(**kwargs)
            model.spec = spec
            return model

        _MODELS[name] = build
        _SPECS[name] = spec
        return build

    return register if builder is None else register(builder)


def list_models(pattern: str | Sequence[str] = "*", *, task: str | None = None) -> list[str]:
    """Sorted names of the registered models matching ``pattern`` (fnmatch wildcards, or a list of them),
    optionally only those of one ``task``."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS} or None, got {task!r}")
    if isinstance(pattern, str):
        patterns = [pattern]
    elif isinstance(pattern, Iterable) and not isinstance(pattern, (bytes, Mapping)):
        patterns = list(pattern)
        others = sorted({type(p).__name__ for p in patterns if not isinstance(p, str)})
        if others:
            raise TypeError(
                f"pattern must be a str or a list of str, got a {type(pattern).__name__} holding {', '.join(others)}"
            )
    else:
        raise TypeError(f"pattern must be a str or a list of str, got {type(pattern).__name__}")
    return sorted(
        n
        for n in _MODELS
        if any(fnmatch.fnmatchcase(n, p) for p in patterns) and (task is None or _SPECS[n].task == task)
    )


def is_model(name: str) -> bool:
    return name in _MODELS


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` the model ``name`` was registered with."""
    if name not in _SPECS:
        raise _unknown_model_error(name)
    return _SPECS[name]


def model_task(name: str) -> str:
    """The task ("classification", "detection" or "segmentation") the model ``name`` was registered for."""
    return model_spec(name).task


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
