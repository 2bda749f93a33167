"""``--cuda-graphs auto|on|off|static``: how a run's steps execute (:class:`dmc.cuda_graphs.StepGraphs`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from dmc.errors import SettingError

CUDA_GRAPH_CHOICES = ("auto", "on", "off", "static")
"""auto: CUDA graphs on a CUDA device with one process, eager otherwise; on: CUDA graphs, refused where they cannot
run; off: eager; static: the captured step's code run eagerly, on any device (what CI checks, and a way to tell a
capture problem from a problem of the step's code)."""

READ_EVERY = 25
"""Steps whose losses and accuracies a run with static steps reads at once (eager runs read every step)."""


def check_cuda_graphs(choice: str, device: torch.device, world_size: int) -> None:
    """Refuses ``on`` where CUDA graphs cannot run: not on a CUDA device, or with several processes."""
    if choice != "on":
        return
    if device.type != "cuda":
        raise SettingError(f"{{cuda_graphs}} on captures the steps as CUDA graphs; this run is on {device}",
                           "pass {device} cuda on a machine with a GPU, or {cuda_graphs} off")
    if world_size > 1:
        raise SettingError("{cuda_graphs} on runs one process: dmc does not capture steps under DDP (its hooks and "
                           "the architecture step's all-reduces are not checked under capture)",
                           "search on one GPU with {cuda_graphs} on, or with several with {cuda_graphs} off")


def step_mode(choice: str, device: torch.device, world_size: int, status: Callable[[str], None]) -> str:
    """The :class:`StepGraphs` mode of ``choice`` on ``device`` with ``world_size`` processes (``on`` checked by
    :func:`check_cuda_graphs`); ``status`` says why ``auto`` stays eager on a GPU."""
    check_cuda_graphs(choice, device, world_size)
    if choice == "static":
        return "static"
    if choice == "off" or device.type != "cuda":
        return "eager"
    if world_size > 1:
        status("CUDA graphs off: this run has several processes (DDP); its steps run eagerly")
        return "eager"
    return "graphs"


def read_interval(mode: str) -> int:
    """How many steps' metrics the run lifecycle reads at once in ``mode``."""
    return 1 if mode == "eager" else READ_EVERY


def step_state(modules: Iterable[torch.nn.Module], optimizers: Iterable[torch.optim.Optimizer]) -> list[torch.Tensor]:
    """Every tensor a training step changes in place: parameters, buffers, optimiser states."""
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
    for optimizer in optimizers:
        tensors += [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return tensors
