"""Data order that survives a kill: a seeded per-epoch order, split across processes, resumable mid-epoch.

The order of epoch ``e`` is a permutation drawn from ``seed + e`` (or ``0..n-1`` without shuffling), so it
does not depend on how many epochs, iterators or processes came before. Under DDP each of ``world_size``
processes takes every ``world_size``-th index of that order (padded by wrapping around, as
``torch.utils.data.DistributedSampler`` does), so one step of ``world_size`` processes with batch ``b`` sees
the same samples as one process with batch ``world_size · b``.

:class:`ResumableDataLoader` counts the batches it has handed out; Lightning stores that count in every
checkpoint (``state_dict``) and gives it back on resume (``load_state_dict``), and the next epoch iterator
starts after those batches. Each loader also owns its random generator, reseeded per epoch, so creating an
iterator never draws from the global RNG (a plain ``DataLoader`` does, which would shift the model's dropout
draws between an interrupted and an uninterrupted run).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

__all__ = ["EpochSampler", "ResumableDataLoader"]


class EpochSampler(Sampler[int]):
    """Indices of ``size`` samples for process ``rank`` of ``world_size``, in the order of the current epoch."""

    def __init__(self, size: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        if not isinstance(world_size, int) or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank!r}, world_size={world_size!r}")
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start = 0  # indices of the current epoch already consumed (set on resume)

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this at every epoch start; a resume offset only holds for the epoch it was made in."""
        if epoch != self.epoch:
            self.start = 0
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.size // self.world_size)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.size)
        padded = len(self) * self.world_size
        order = torch.cat([order, order[: padded - self.size]]) if padded > self.size else order
        start, self.start = self.start, 0
        yield from order[self.rank :: self.world_size][start:].tolist()


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochSampler` whose position is saved in checkpoints (module docstring).

    Exact resumption needs ``num_workers=0`` or a dataset without per-item randomness: with workers, which
    worker draws which sample depends on where the epoch started.
    """

    def __init__(self, dataset, *, sampler: Sampler, **kwargs: Any) -> None:
        kwargs["generator"] = kwargs.get("generator") or torch.Generator()
        super().__init__(dataset, sampler=sampler, **kwargs)
        self.batches_served = 0

    def __iter__(self) -> Iterator[Any]:
        sampler = self.sampler
        if not isinstance(sampler, EpochSampler):  # Lightning swapped the sampler (e.g. overfit_batches)
            yield from super().__iter__()
            return
        self.generator.manual_seed(sampler.seed + sampler.epoch)  # workers' seeds, without the global RNG
        self.batches_served = sampler.start // self.batch_size
        for batch in super().__iter__():
            self.batches_served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": getattr(self.sampler, "epoch", 0), "batches_served": self.batches_served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if not isinstance(state, dict) or not {"epoch", "batches_served"} <= state.keys():
            raise ValueError(f"loader state: expected a dict with 'epoch' and 'batches_served', got {state!r:.80}")
        if not isinstance(self.sampler, EpochSampler):
            return
        self.sampler.set_epoch(int(state["epoch"]))
        self.sampler.start = int(state["batches_served"]) * self.batch_size
