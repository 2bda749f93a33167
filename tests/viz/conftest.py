import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def tiny_runs_on_one_thread():
    """The tiny search runs drawn here take a second on one intra-op thread; on a busy machine OpenMP's spinning
    threads make them minutes (as for the root conftest's ONE_THREAD folders)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
