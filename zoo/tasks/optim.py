"""Parameter groups for weight decay: decay the weights of convs and linears, never norms or biases; and a
smaller learning rate for a detector's or segmenter's backbone.

Decaying a BatchNorm γ/β or a bias only pulls a scale or an offset towards zero, which does not
regularise the function the network computes, so both are left out (as in the "bag of tricks" and
timm's recipes).

A backbone that already knows its features (ImageNet, or a classification run) is trained more gently than
the new neck and head: DETR trains its ResNet at 1e-5 against 1e-4 for the Transformer (Carion et al. 2020,
§4), torchvision's reference scripts do the same with ``--lr-backbone``. ``backbone_lr_scale`` multiplies the
base rate for the parameters of ``model.backbone``'s feature extractor (``backbone.body`` where the backbone
also holds an FPN neck, which is new and keeps the full rate).
"""

from __future__ import annotations

from torch import nn

__all__ = ["backbone_of", "param_groups", "param_groups_weight_decay"]


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


def backbone_of(model: nn.Module) -> nn.Module:
    """The feature extractor of a detector or segmenter: ``model.backbone`` (its ``body`` where the backbone
    wraps one with an FPN). ValueError for a model without one, e.g. a classifier."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise ValueError(
            f"backbone_lr_scale needs a model with a backbone (model.backbone), got {type(model).__name__}, "
            "which has none; leave task.backbone_lr_scale at 1.0"
        )
    body = getattr(backbone, "body", None)
    return body if isinstance(body, nn.Module) else backbone


def param_groups(
    model: nn.Module,
    lr: float | None,
    weight_decay: float,
    skip_norm_and_bias: bool = True,
    backbone_lr_scale: float = 1.0,
) -> list[dict]:
    """:func:`param_groups_weight_decay`'s groups; with ``backbone_lr_scale`` ≠ 1 each is split in two, the
    backbone's half at ``lr · backbone_lr_scale`` (every group then names its ``lr``)."""
    if isinstance(backbone_lr_scale, bool) or not isinstance(backbone_lr_scale, (int, float)):
        raise TypeError(f"backbone_lr_scale must be a number, got {backbone_lr_scale!r}")
    if not backbone_lr_scale > 0:
        raise ValueError(f"backbone_lr_scale must be > 0 (freeze a backbone instead), got {backbone_lr_scale}")
    if backbone_lr_scale == 1:
        return param_groups_weight_decay(model, weight_decay, skip_norm_and_bias)
    if lr is None:
        raise ValueError("backbone_lr_scale needs the optimizer's base rate (optimizer.lr) to scale")
    backbone = backbone_of(model)
    in_backbone = {id(p) for p in backbone.parameters()}
    rest = nn.ParameterList([p for p in model.parameters() if id(p) not in in_backbone])
    groups = []
    for part, scale in ((rest, 1.0), (backbone, float(backbone_lr_scale))):
        for group in param_groups_weight_decay(part, weight_decay, skip_norm_and_bias):
            groups.append({**group, "lr": lr * scale})
    return [group for group in groups if group["params"]]
