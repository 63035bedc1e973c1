"""What every zoo classifier shares: input checking, the timm-style forward API, the head and `feature_info`.

forward(x) = forward_head(forward_features(x))
forward_head(x, pre_logits=True) returns the pooled vector before the classifier: `num_features` wide, or
`head_hidden_size` where the head has a pre-logits MLP (VGG, MobileNetV3).
get_classifier() / reset_classifier(num_classes, global_pool=None) reach the head's linear layer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from zoo.layers.classifier import ClassifierHead
from zoo.registry import ModelSpec

__all__ = ["FeatureInfo", "ImageClassifier", "check_classifier_args", "check_image_batch"]


class FeatureInfo(list):
    """A list of ``{"num_chs", "reduction", "module"}`` dicts, one per stage, shallowest first."""

    def channels(self) -> list[int]:
        return [info["num_chs"] for info in self]

    def reduction(self) -> list[int]:
        return [info["reduction"] for info in self]

    def module_name(self) -> list[str]:
        return [info["module"] for info in self]


def check_image_batch(x: object, in_chans: int, model_name: str = "model", dtype: torch.dtype | None = None) -> None:
    """Raise a ValueError/TypeError unless ``x`` is an (N, in_chans, H, W) floating-point tensor, of ``dtype``
    (the model's weights) where given.

    The dtype is not checked under ``torch.autocast``, which casts inputs and weights itself. The values are not
    checked: NaN or infinite pixels give NaN logits without an error (finding them costs a pass over the batch
    and a device sync on every call); test ``torch.isfinite(x).all()`` where your data may hold them.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{model_name} expects a torch.Tensor of shape (N, {in_chans}, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(
            f"{model_name} expects a 4-D batch of shape (N, {in_chans}, H, W), got a {x.ndim}-D tensor "
            f"of shape {tuple(x.shape)}" + (" (add a batch dimension with x.unsqueeze(0))" if x.ndim == 3 else "")
        )
    if x.shape[1] != in_chans:
        raise ValueError(
            f"{model_name} expects {in_chans} input channels (N, {in_chans}, H, W), got {x.shape[1]} "
            f"in a tensor of shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{model_name} expects a floating-point tensor, got dtype {x.dtype}")
    if dtype is not None and x.dtype != dtype and not _autocast_enabled(x.device):
        float32_hint = " (x.float())" if dtype == torch.float32 else ""
        raise TypeError(
            f"{model_name} has {dtype} weights, got a {x.dtype} input: convert the input with x.to({dtype})"
            f"{float32_hint}, or the model with model.to({x.dtype})"
        )


def _autocast_enabled(device: torch.device) -> bool:
    return torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type)


def check_classifier_args(num_classes: object, in_chans: object) -> None:
    """The builder arguments every classifier takes: ``num_classes >= 0`` (0: no classifier), ``in_chans >= 1``."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be an int >= 0 (0 removes the classifier), got {num_classes!r}")
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be a positive int, got {in_chans!r}")


def _checking_input(forward_features: Callable) -> Callable:
    @functools.wraps(forward_features)
    def checked(self: ImageClassifier, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return forward_features(self, x)

    return checked


class ImageClassifier(nn.Module):
    """Base class: subclasses build their layers, set ``num_features``, ``feature_info`` and ``head`` (a
    :class:`~zoo.layers.ClassifierHead`, the last child), and implement ``forward_features``.

    ``reference_renames`` is a list of ``(regex, replacement)`` pairs applied in order to turn a
    torchvision/timm state_dict key into this model's key (see :func:`zoo.load_reference_weights`);
    ``reference_head`` maps the reference's head modules onto ours (``{"fc": "fc"}``: the reference's
    ``fc.*`` is our ``head.fc.*``), the one rename rule every classifier's head shares.
    ``feature_skip`` names top-level children that are not on the path of ``forward_features``.

    ``forward`` and ``forward_features`` both check their input (:meth:`check_input`): the base wraps each
    subclass's ``forward_features`` with the check, so that a direct call gets the same clear errors as ``forward``
    instead of a convolution's.
    """

    reference_renames: list[tuple[str, str]] = []
    reference_head: dict[str, str] = {"fc": "fc"}
    feature_skip: tuple[str, ...] = ()
    head_modules: tuple[str, ...] = ("head",)
    # Set by the registry on a model built by name (zoo.create_model or its builder): its ModelSpec.
    spec: ModelSpec | None = None

    num_classes: int
    in_chans: int
    num_features: int
    feature_info: FeatureInfo
    head: ClassifierHead

    @property
    def default_input_size(self) -> tuple[int, int]:
        """The (H, W) the architecture was published at (FLOPs reports count at this size): from the spec."""
        return self.spec.default_input_size if self.spec else (224, 224)

    @property
    def min_input_size(self) -> tuple[int, int]:
        """The smallest (H, W) the architecture accepts (valid-padded stems need more than 32): from the spec."""
        return self.spec.min_input_size if self.spec else (32, 32)

    @property
    def head_hidden_size(self) -> int:
        """The width of ``forward_head(x, pre_logits=True)`` (timm's name): ``num_features`` unless the head
        has a pre-logits MLP."""
        return self.head.hidden_size

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the linear classifier with a new one for ``num_classes`` (0: none, the model returns the
        pre-logits vector); ``global_pool`` optionally changes the pooling ("avg", "max", "token", "")."""
        self.head.reset(num_classes, global_pool)
        self.num_classes = num_classes

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "forward_features" in vars(cls):
            cls.forward_features = _checking_input(vars(cls)["forward_features"])

    def check_input(self, x: torch.Tensor) -> None:
        """An (N, in_chans, H, W) batch of the weights' dtype and at least ``min_input_size``."""
        weight_dtype = next((p.dtype for p in self.parameters() if p.is_floating_point()), None)
        check_image_batch(x, self.in_chans, type(self).__name__, weight_dtype)
        min_height, min_width = self.min_input_size
        if x.shape[-2] < min_height or x.shape[-1] < min_width:
            raise ValueError(
                f"{type(self).__name__} expects an input of at least {min_height}×{min_width} pixels"
                f"{self._min_input_note()}, got {x.shape[-2]}×{x.shape[-1]}"
            )

    def _min_input_note(self) -> str:
        """Why the minimum is what it is, where it depends on the mode (see Inception v3)."""
        return ""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # forward_features checks the input
