"""`features_only=True`: a classifier cut after its last requested stage, returning stage maps.

The model's top-level children are run in order (the path of ``forward_features``), skipping the
ones it lists in ``feature_skip``; the outputs of the modules named in ``feature_info`` are kept.
Everything after the deepest requested stage (the pooling and classifier head included) is dropped,
so the feature network holds only the parameters it uses and its state_dict keys equal the
classifier's.

A ``feature_info`` module may also be a child of a top-level ``nn.Sequential`` (``"blocks.3"``, a ViT's blocks):
that Sequential is kept up to it and run child by child. A model whose stage outputs are not (N, C, H, W) maps
says so with ``feature_format``, and each output is returned as one: ``"NHWC"`` (channels last) is permuted,
``"NLC"`` (a token sequence whose first ``num_prefix_tokens`` are class or other non-spatial tokens) is
reshaped to the (H / reduction, W / reduction) grid of the input.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from zoo.models.base import FeatureInfo, ImageClassifier, check_image_batch

__all__ = ["FeatureListNet"]


def _resolve_out_indices(out_indices: Sequence[int] | None, num_stages: int) -> tuple[int, ...]:
    if out_indices is None:
        return tuple(range(num_stages))
    if isinstance(out_indices, int) or not all(isinstance(i, int) for i in out_indices):
        raise TypeError(f"out_indices must be a sequence of ints, got {out_indices!r}")
    resolved = []
    for index in out_indices:
        if not -num_stages <= index < num_stages:
            raise ValueError(
                f"out_indices entry {index} is out of range: this model has {num_stages} stages "
                f"(valid indices 0..{num_stages - 1}, or negative from the end)"
            )
        resolved.append(index % num_stages)
    if len(set(resolved)) != len(resolved) or resolved != sorted(resolved):
        raise ValueError(f"out_indices must be increasing and without repeats, got {tuple(out_indices)}")
    return tuple(resolved)


FEATURE_FORMATS = ("NCHW", "NHWC", "NLC")


def _as_map(x: torch.Tensor, feature_format: str, image_size: tuple[int, int], reduction: int, prefix: int):
    """A stage output in ``feature_format`` as an (N, C, H / reduction, W / reduction) map."""
    if feature_format == "NHWC":
        return x.permute(0, 3, 1, 2)
    if feature_format == "NLC":
        height, width = (side // reduction for side in image_size)
        return x[:, prefix:].transpose(1, 2).unflatten(2, (height, width))
    return x


def _kept_prefix(child: nn.Module, parent: str, wanted: set[str]) -> list[str]:
    """The names of ``child``'s own children up to the last one listed in ``wanted`` as ``parent.name``."""
    if not isinstance(child, nn.Sequential):
        return []
    names = list(child._modules)
    positions = [i for i, name in enumerate(names) if f"{parent}.{name}" in wanted]
    return names[: max(positions) + 1] if positions else []


class FeatureListNet(nn.ModuleDict):
    """Wrap a built classifier; ``forward(x)`` returns the list of the selected stage feature maps."""

    def __init__(self, model: ImageClassifier, out_indices: Sequence[int] | None = None) -> None:
        if not isinstance(getattr(model, "feature_info", None), FeatureInfo):
            raise TypeError(f"{type(model).__name__} declares no feature_info; it cannot be used with features_only")
        out_indices = _resolve_out_indices(out_indices, len(model.feature_info))
        # Keep the classifier's module names so that state_dict keys are the classifier's.
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        wanted = [model.feature_info[i]["module"] for i in out_indices]
        remaining = set(wanted)
        dropped_children: list[str] = []  # of a Sequential kept up to a feature module inside it
        run_by_child: set[str] = set()
        for name, child in model.named_children():
            if not remaining:
                break
            if name in model.feature_skip:
                continue
            kept = _kept_prefix(child, name, remaining)
            if kept:
                layers[name] = nn.Sequential(OrderedDict((sub, child._modules[sub]) for sub in kept))
                dropped_children += [f"{name}.{sub}" for sub in child._modules if sub not in kept]
                remaining -= {f"{name}.{sub}" for sub in kept}
                run_by_child.add(name)
            else:
                layers[name] = child
            remaining.discard(name)
        if remaining:
            raise ValueError(
                f"feature modules {sorted(remaining)} are not top-level children of {type(model).__name__} "
                "(nor children of a top-level nn.Sequential)"
            )
        super().__init__(layers)
        self.out_indices = out_indices
        self.feature_info = FeatureInfo(model.feature_info[i] for i in out_indices)
        self.in_chans = model.in_chans
        self.model_name = type(model).__name__
        self.reference_renames = list(model.reference_renames)
        self.reference_head = dict(model.reference_head)
        self.return_layers = set(wanted)
        self.sequences = run_by_child  # run child by child
        self.feature_format = getattr(model, "feature_format", "NCHW")
        if self.feature_format not in FEATURE_FORMATS:
            raise ValueError(f"feature_format must be one of {FEATURE_FORMATS}, got {self.feature_format!r}")
        self.num_prefix_tokens = getattr(model, "num_prefix_tokens", 0)
        self.reductions = {info["module"]: info["reduction"] for info in self.feature_info}
        # Modules of the full classifier not kept here: their reference weights are skipped on load.
        self.dropped_modules = tuple(n for n, _ in model.named_children() if n not in layers) + tuple(dropped_children)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_image_batch(x, self.in_chans, f"{self.model_name} (features_only)")
        image_size = (x.shape[-2], x.shape[-1])
        features = []
        for name, layer in self.items():
            steps = [(f"{name}.{sub}", m) for sub, m in layer.named_children()] if name in self.sequences else []
            for step_name, step in steps or [(name, layer)]:
                x = step(x)
                if step_name in self.return_layers:
                    reduction = self.reductions[step_name]
                    features.append(_as_map(x, self.feature_format, image_size, reduction, self.num_prefix_tokens))
        return features
