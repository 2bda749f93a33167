"""StepGraphs's modes and the --cuda-graphs choice; the capture itself on a GPU only (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from dmc.cuda_graphs import READ_EVERY, CapturableSGD, StepGraphs, read_interval, step_mode, step_state
from dmc.errors import SettingError

CPU = torch.device("cpu")


def linear_step(device: torch.device):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).to(device)
    optimizer = CapturableSGD(model.parameters(), 0.1, momentum=0.9)

    def core(x, y):
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        return loss.detach(), (logits.argmax(1) == y).sum()

    return model, optimizer, core


def batches(n: int, sizes=(8,)):
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(sizes[i % len(sizes)], 4, generator=g), torch.randint(0, 3, (sizes[i % len(sizes)],),
                                                                               generator=g)) for i in range(n)]


def test_static_steps_copy_into_buffers_and_compute_what_eager_steps_compute():
    runs = {}
    for mode in ("eager", "static"):
        model, optimizer, core = linear_step(CPU)
        steps = StepGraphs(core, mode, CPU)
        losses = []
        for x, y in batches(6, sizes=(8, 8, 5)):  # a short batch gets buffers of its own shape
            optimizer.sync_lr()
            loss, _ = steps(("structure",), (x, y))
            losses.append(loss.clone())
        runs[mode] = (torch.stack(losses), [p.detach().clone() for p in model.parameters()])
    assert torch.equal(runs["eager"][0], runs["static"][0])
    for a, b in zip(runs["eager"][1], runs["static"][1]):
        assert torch.equal(a, b)


def test_a_new_structure_drops_the_buffers_of_the_old_one():
    _, optimizer, core = linear_step(CPU)
    steps = StepGraphs(core, "static", CPU)
    optimizer.sync_lr()
    steps(("a",), batches(1)[0])
    first = dict(steps._graphs)
    steps(("b",), batches(1)[0])
    assert len(steps._graphs) == 1 and list(steps._graphs.values())[0] is not list(first.values())[0]


def test_graphs_need_a_cuda_device_and_the_mode_must_be_known():
    with pytest.raises(ValueError, match="CUDA"):
        StepGraphs(lambda: (), "graphs", CPU)
    with pytest.raises(ValueError, match="step mode"):
        StepGraphs(lambda: (), "fast", CPU)


def test_the_cuda_graphs_choice():
    said = []
    assert step_mode("auto", CPU, 1, said.append) == "eager"
    assert step_mode("off", CPU, 1, said.append) == "eager"
    assert step_mode("static", CPU, 1, said.append) == "static"
    assert step_mode("auto", torch.device("cuda"), 1, said.append) == "graphs"
    assert step_mode("auto", torch.device("cuda"), 2, said.append) == "eager" and "several processes" in said[-1]
    with pytest.raises(SettingError, match="this run is on cpu"):
        step_mode("on", CPU, 1, said.append)
    with pytest.raises(SettingError, match="one process"):
        step_mode("on", torch.device("cuda"), 2, said.append)
    assert read_interval("eager") == 1 and read_interval("graphs") == read_interval("static") == READ_EVERY


def test_step_state_lists_parameters_buffers_and_optimizer_states():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    optimizer = CapturableSGD(model.parameters(), 0.1, momentum=0.9)
    optimizer.sync_lr()
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    tensors = step_state([model], [optimizer])
    assert len(tensors) == 4 + 3 + 4  # weights and biases, BN's three buffers, four momentum buffers


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_captured_steps_equal_eager_ones_on_a_gpu():
    cuda = torch.device("cuda")
    runs = {}
    for mode in ("eager", "graphs"):
        model, optimizer, core = linear_step(cuda)
        said: list[str] = []
        state = [model], [optimizer]
        steps = StepGraphs(core, mode, cuda, state=lambda state=state: step_state(*state), status=said.append)
        losses = []
        for x, y in batches(12, sizes=(8, 8, 5)):
            optimizer.sync_lr()
            loss, _ = steps(("structure",), (x, y))
            losses.append(loss.clone())
        assert not said, said  # no fallback
        runs[mode] = (torch.stack(losses), [p.detach().clone() for p in model.parameters()])
    torch.testing.assert_close(runs["eager"][0], runs["graphs"][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(runs["eager"][1], runs["graphs"][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
