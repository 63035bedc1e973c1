"""The accumulator protocol every zoo metric follows: ``update`` per batch, ``compute`` at the end, ``reset``.

A training task keeps one metric object per split, calls ``update`` in each validation step and logs
``compute()`` at the end of the epoch, then ``reset()`` — the same life cycle as a torchmetrics ``Metric``, so
Lightning code reads the same either way.

``compute()`` with no ``update()`` since the last ``reset()`` (or since construction) is a ``ValueError`` for every
metric: a value of no data (NaN, an all-zero matrix, -1) is never returned as if it were a measurement. The base
class enforces this once for all subclasses by wrapping the ``reset``, ``update`` and ``compute`` each one defines,
as torchmetrics wraps them (torchmetrics only warns there).
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

__all__ = ["Metric"]


def _after_reset(reset: Callable) -> Callable:
    @functools.wraps(reset)
    def wrapped(self: Metric, *args: Any, **kwargs: Any) -> Any:
        result = reset(self, *args, **kwargs)
        self._updated = False
        return result

    return wrapped


def _after_update(update: Callable) -> Callable:
    @functools.wraps(update)
    def wrapped(self: Metric, *args: Any, **kwargs: Any) -> Any:
        result = update(self, *args, **kwargs)
        self._updated = True  # only once the batch was accepted: a refused batch leaves the state as it was
        return result

    return wrapped


def _updated_first(compute: Callable) -> Callable:
    @functools.wraps(compute)
    def wrapped(self: Metric, *args: Any, **kwargs: Any) -> Any:
        if not getattr(self, "_updated", False):
            raise ValueError(
                f"{type(self).__name__}.compute() called before any update() since the last reset(): "
                "there is nothing to compute the metric of"
            )
        return compute(self, *args, **kwargs)

    return wrapped


class Metric(ABC):
    """Base class: subclasses define ``reset`` (the empty state), ``update`` and ``compute``; ``compute`` before
    any ``update`` raises ``ValueError`` (module docstring)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, wrap in (("reset", _after_reset), ("update", _after_update), ("compute", _updated_first)):
            if name in vars(cls):
                setattr(cls, name, wrap(vars(cls)[name]))

    def __init__(self) -> None:
        self.reset()

    @abstractmethod
    def reset(self) -> None:
        """Forget everything seen so far."""

    @abstractmethod
    def update(self, *args: Any, **kwargs: Any) -> None:
        """Add one batch."""

    @abstractmethod
    def compute(self) -> Any:
        """The metric over every batch since the last ``reset``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Add a batch and return the running value."""
        self.update(*args, **kwargs)
        return self.compute()
