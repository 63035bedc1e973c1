"""Argument checks shared by the hand-written ops: tensors of the right rank, ``int | (int, int)`` sizes, and the
sliding-window output size

    out = floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1

which must be at least 1 (a kernel larger than the padded input is a user error, not an empty result).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from zoo.analysis.formulas import conv2d_output_size

__all__ = ["as_pair", "check_tensor", "window_output_size"]


def check_tensor(value: object, name: str, ndims: Sequence[int], *, floating: bool = True) -> Tensor:
    """Raise ``TypeError`` unless ``value`` is a tensor (of floating dtype when ``floating``), ``ValueError`` unless
    its rank is one of ``ndims``."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
    if value.dim() not in ndims:
        expected = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{name}: expected a {expected} tensor, got shape {list(value.shape)}")
    return value


def as_pair(value: int | Sequence[int], name: str, *, minimum: int) -> tuple[int, int]:
    """``3 -> (3, 3)``, ``(3, 5) -> (3, 5)``; every entry must be an ``int`` of at least ``minimum``."""
    pair = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, Sequence) else None
    # bool is an int subclass, but stride=True is almost certainly a mistake.
    if pair is None or len(pair) != 2 or any(not isinstance(v, int) or isinstance(v, bool) for v in pair):
        raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name}: expected values >= {minimum}, got {value!r}")
    return pair


def window_output_size(
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int]:
    """Number of window positions along H and W; ``ValueError`` if the dilated kernel overhangs the padded input."""
    out = tuple(conv2d_output_size(*args) for args in zip(size, kernel, stride, padding, dilation, strict=True))
    if min(out) < 1:
        effective = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
        padded = tuple(s + 2 * p for s, p in zip(size, padding, strict=True))
        raise ValueError(f"kernel of effective size {effective} is larger than the padded input {padded}")
    return out
