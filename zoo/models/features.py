"""`features_only=True`: a classifier cut after its last requested stage, returning stage maps.

The model's top-level children are run in order (the path of ``forward_features``), skipping the
ones it lists in ``feature_skip``; the outputs of the modules named in ``feature_info`` are kept.
Everything after the deepest requested stage (the pooling and classifier head included) is dropped,
so the feature network holds only the parameters it uses and its state_dict keys equal the
classifier's.
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
        for name, child in model.named_children():
            if not remaining:
                break
            if name in model.feature_skip:
                continue
            layers[name] = child
            remaining.discard(name)
        if remaining:
            raise ValueError(
                f"feature modules {sorted(remaining)} are not top-level children of {type(model).__name__}"
            )
        super().__init__(layers)
        self.out_indices = out_indices
        self.feature_info = FeatureInfo(model.feature_info[i] for i in out_indices)
        self.in_chans = model.in_chans
        self.model_name = type(model).__name__
        self.reference_renames = list(model.reference_renames)
        self.reference_head = dict(model.reference_head)
        self.return_layers = set(wanted)
        # Modules of the full classifier not kept here: their reference weights are skipped on load.
        self.dropped_modules = tuple(n for n, _ in model.named_children() if n not in layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_image_batch(x, self.in_chans, f"{self.model_name} (features_only)")
        features = []
        for name, layer in self.items():
            x = layer(x)
            if name in self.return_layers:
                features.append(x)
        return features
