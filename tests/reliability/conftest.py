"""Shared by every reliability test module."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: the machine's cores may be shared, and two threads on a busy
    core make each small step hundreds of times slower (children use one too)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
