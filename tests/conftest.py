"""Shared fixtures.

Tests run on one intra-op thread: their tensors are small, where OpenMP's fork/join costs more than it saves
(on a busy 2-core machine a float64 gradcheck ran 25x slower on two threads). `scripts/test.sh` runs two
pytest workers instead (pytest-xdist), which keeps both cores busy.
"""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _deterministic_seed():
    torch.manual_seed(0)
