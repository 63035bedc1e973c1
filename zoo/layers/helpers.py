"""Small factories shared by every block: activation lookup, channel rounding and stochastic depth.

`make_divisible(v, divisor)` rounds a channel count to the nearest multiple of `divisor`
(never below `min_value`, and never more than `1 - round_limit` below `v`), the rule used by
MobileNet, EfficientNet and timm's squeeze-excite reduction.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["drop_path", "get_act_layer", "make_divisible"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "hard_sigmoid": nn.Hardsigmoid,
    "hard_swish": nn.Hardswish,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


def get_act_layer(act_layer: str | Callable[..., nn.Module] | None) -> Callable[..., nn.Module] | None:
    """Resolve an activation given by name (``"hard_swish"``) or as a class; ``None`` stays ``None``."""
    if act_layer is None or callable(act_layer):
        return act_layer
    if isinstance(act_layer, str):
        key = act_layer.lower()
        if key not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {act_layer!r}; expected one of {sorted(_ACTIVATIONS)} or an nn.Module class"
            )
        return _ACTIVATIONS[key]
    raise TypeError(f"act_layer must be a name, an nn.Module class or None, got {type(act_layer).__name__}")


def make_activation(act_layer: str | Callable[..., nn.Module] | None, inplace: bool = True) -> nn.Module:
    """Instantiate an activation, in place where the class supports it."""
    act_cls = get_act_layer(act_layer)
    if act_cls is None:
        return nn.Identity()
    if act_cls in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU):
        return act_cls(inplace=inplace)
    return act_cls()


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, at least ``min_value`` (default ``divisor``),
    adding one more ``divisor`` if rounding lost more than ``1 - round_limit`` of ``value``."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth (Huang et al., 2016): zero a sample's residual branch with probability ``rate``
    and scale the survivors by 1/(1 − rate), so the expectation is unchanged; identity in eval."""
    if not training or rate == 0.0:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask.div_(keep)
