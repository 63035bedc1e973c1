"""Parameter groups for weight decay: decay the weights of convs and linears, never norms or biases.

Decaying a BatchNorm γ/β or a bias only pulls a scale or an offset towards zero, which does not
regularise the function the network computes, so both are left out (as in the "bag of tricks" and
timm's recipes).
"""

from __future__ import annotations

from torch import nn

__all__ = ["param_groups_weight_decay"]


def param_groups_weight_decay(model: nn.Module, weight_decay: float, skip_norm_and_bias: bool = True) -> list[dict]:
    """Two groups: tensors with ndim ≥ 2 get ``weight_decay``; 1-D tensors (norm γ/β, biases) get 0."""
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (no_decay if skip_norm_and_bias and param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
