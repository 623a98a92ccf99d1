"""Fixtures of the API tests."""
import pytest
import torch


@pytest.fixture(autouse=True, scope='package')
def _one_torch_thread():
    """Forward passes on one thread: on a small machine shared with other jobs, OpenMP's
    threads wait for each other at every layer and a 2-thread forward can take 30x longer."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(autouse=True)
def _seeded():
    """Random models are the same whatever ran before; the global RNG is restored after."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield
