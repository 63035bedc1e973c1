"""The accumulator protocol every zoo metric follows: ``update`` per batch, ``compute`` at the end, ``reset``.

A training task keeps one metric object per split, calls ``update`` in each validation step and logs
``compute()`` at the end of the epoch, then ``reset()`` — the same life cycle as a torchmetrics ``Metric``, so
Lightning code reads the same either way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Metric"]


class Metric(ABC):
    """Base class: subclasses define ``reset`` (the empty state), ``update`` and ``compute``."""

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
