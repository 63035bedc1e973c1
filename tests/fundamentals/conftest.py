"""One intra-op thread for these tests: on tensors of a few hundred elements the thread pool only adds
synchronisation, and on a busy 2-core machine that made a float64 gradcheck 100x slower."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
