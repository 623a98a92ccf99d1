"""Fixtures of the API tests."""
import pytest
import torch


@pytest.fixture(autouse=True, scope='module')
def _one_thread_per_module(one_torch_thread):
    """Every API test module runs its forward passes on one thread (tests/conftest.py)."""
    yield


@pytest.fixture(autouse=True)
def _seeded():
    """Random models are the same whatever ran before; the global RNG is restored after."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield
