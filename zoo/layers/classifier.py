"""The classification head every zoo classifier ends with (timm's ``ClassifierHead``):

    global pool → flatten → [pre-logits MLP] → dropout → linear

``pool_type`` picks the pooling: ``"avg"`` (the CNNs since Network-in-Network), ``"max"``, ``"token"``
(the first token of an (N, L, D) sequence, ViT's class token) or ``""`` (none: the input is already a
vector). ``pool_size`` > 1 keeps a ``pool_size``² grid (VGG/AlexNet pool to 7×7 before their MLP).
``pre_logits`` is an optional module between pooling and dropout (VGG's two 4096-wide layers,
MobileNetV3's linear + hard-swish); ``forward(x, pre_logits=True)`` stops after it, before the dropout.

Parameters: (F·p² → D through ``pre_logits``) + D·K + K for the linear, with F input channels, D the
hidden width (F without a pre-logits module) and K classes; multiply-adds: D·K.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["POOL_TYPES", "ClassifierHead", "GlobalPool"]

POOL_TYPES = ("avg", "max", "token", "")


def _check_pool_type(pool_type: object) -> str:
    if pool_type not in POOL_TYPES:
        raise ValueError(f"pool_type must be one of {POOL_TYPES}, got {pool_type!r}")
    return pool_type


class GlobalPool(nn.Module):
    """Pool an (N, C, H, W) map to (N, C·p²) or an (N, L, D) token sequence to (N, D)."""

    def __init__(self, pool_type: str = "avg", pool_size: int = 1) -> None:
        super().__init__()
        self.pool_type = _check_pool_type(pool_type)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be a positive int, got {pool_size!r}")
        if pool_size > 1 and pool_type not in ("avg", "max"):
            raise ValueError(f"pool_size > 1 needs pool_type 'avg' or 'max', got {pool_type!r}")
        self.pool_size = pool_size
        # Modules, not functions, so that the FLOPs counter and the receptive-field tracer see the pooling.
        adaptive = {"avg": nn.AdaptiveAvgPool2d, "max": nn.AdaptiveMaxPool2d}.get(pool_type)
        self.pool = adaptive(pool_size) if adaptive else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_type == "":
            return torch.flatten(x, 1)
        if self.pool_type == "token" or x.ndim == 3:
            if x.ndim != 3:
                raise ValueError(f"pool_type 'token' expects an (N, L, D) sequence, got shape {tuple(x.shape)}")
            if self.pool_type == "token":
                return x[:, 0]
            return x.mean(dim=1) if self.pool_type == "avg" else x.amax(dim=1)
        if x.ndim != 4:
            raise ValueError(f"GlobalPool expects an (N, C, H, W) map or an (N, L, D) sequence, got {tuple(x.shape)}")
        return torch.flatten(self.pool(x), 1)

    def extra_repr(self) -> str:
        return f"pool_type={self.pool_type!r}" + (f", pool_size={self.pool_size}" if self.pool_size > 1 else "")


class ClassifierHead(nn.Module):
    """Pool, optional pre-logits module, dropout and the linear classifier (see the module docstring).

    ``in_features`` is the channel count of the map it reads (the model's ``num_features``);
    ``hidden_size`` is the width ``pre_logits`` outputs (the model's ``head_hidden_size``); ``num_classes=0``
    leaves no linear layer, so the head returns the pre-logits vector.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        pool_type: str = "avg",
        pool_size: int = 1,
        drop_rate: float = 0.0,
        pre_logits: nn.Module | None = None,
        hidden_size: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
            raise ValueError(f"in_features must be a positive int, got {in_features!r}")
        if not isinstance(drop_rate, (int, float)) or not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be a number in [0, 1), got {drop_rate!r}")
        if (pre_logits is None) != (hidden_size is None):
            raise ValueError("pre_logits and hidden_size go together: give both or neither")
        self.in_features = in_features
        self.hidden_size = in_features * pool_size * pool_size if hidden_size is None else hidden_size
        self.global_pool = GlobalPool(pool_type, pool_size)
        self.pre_logits = nn.Identity() if pre_logits is None else pre_logits
        self.drop = nn.Dropout(drop_rate)
        self.fc = self._linear(num_classes)

    def _linear(self, num_classes: int) -> nn.Module:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0 (0 removes the classifier), got {num_classes!r}")
        self.num_classes = num_classes
        return nn.Linear(self.hidden_size, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int, pool_type: str | None = None) -> None:
        """A new, freshly initialised linear layer for ``num_classes`` (0: none); optionally another pooling."""
        if pool_type is not None:
            if self.global_pool.pool_size > 1:
                raise ValueError("this head pools to a fixed grid its pre-logits layer depends on: keep its pooling")
            self.global_pool = GlobalPool(pool_type)
        device = next(self.parameters(), torch.empty(0)).device
        self.fc = self._linear(num_classes).to(device)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(self.global_pool(x))
        if pre_logits:
            return x
        return self.fc(self.drop(x))
