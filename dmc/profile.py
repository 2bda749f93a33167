"""Profiling compiled networks: parameters, multiply-accumulates (PyTorch's flop counter), CPU latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from dmc.compiler.networks import CompiledNetwork


@dataclass(frozen=True)
class Profile:
    parameters: int
    """Without the auxiliary head (as DARTS reports)."""
    parameters_with_auxiliary: int
    macs: int
    """Multiply-accumulates of one image at ``input_size`` (half the flop counter's FLOPs)."""
    input_size: int
    latency_ms: dict[int, float] = field(default_factory=dict)
    """Median eval-mode latency per batch size, on this machine's CPU (or ``device``)."""
    threads: int = 1
    device: str = "cpu"
    latency_range_ms: dict[int, tuple[float, float]] = field(default_factory=dict)
    """Fastest and slowest of the timed runs behind each median, per batch size."""
    repeats: int = 0
    """Timed runs per batch size."""

    @property
    def has_auxiliary_head(self) -> bool:
        return self.parameters_with_auxiliary != self.parameters


def count_macs(network: CompiledNetwork, input_size: int) -> int:
    network = network.eval()
    x = torch.zeros(1, network.build_args.in_channels, input_size, input_size,
                    device=next(network.parameters()).device)
    return module_macs(network, x)


def module_macs(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of ``module(x)`` as PyTorch's FLOP counter counts them (convolutions, matmuls)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(x)
    return counter.get_total_flops() // 2


def times_ms(fn: Callable[[], object], repeats: int = 10, warmup: int = 2,
             synchronize: Callable[[], None] | None = None) -> list[float]:
    """Wall times of ``fn()`` in milliseconds, ``repeats`` runs after ``warmup`` untimed ones; ``synchronize``
    (e.g. ``torch.cuda.synchronize``) runs before and after each timed call."""
    sync = synchronize or (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return times


def median_ms(fn: Callable[[], object], repeats: int = 10, warmup: int = 2,
              synchronize: Callable[[], None] | None = None) -> float:
    """Median of :func:`times_ms`."""
    return statistics.median(times_ms(fn, repeats, warmup, synchronize))


def latency_times_ms(network: CompiledNetwork, batch: int, input_size: int, repeats: int = 10,
                    warmup: int = 2) -> list[float]:
    """Wall times of ``repeats`` eval forward passes, in milliseconds."""
    network = network.eval()
    device = next(network.parameters()).device
    x = torch.randn(batch, network.build_args.in_channels, input_size, input_size, device=device)
    with torch.no_grad():
        return times_ms(lambda: network(x), repeats, warmup, torch.cuda.synchronize if device.type == "cuda" else None)


def profile(network: CompiledNetwork, input_size: int, batches: tuple[int, ...] = (1, 32),
            repeats: int = 10) -> Profile:
    """Parameters, MACs and latency (median and range of ``repeats`` runs per batch size) of ``network`` at
    ``input_size`` x ``input_size``."""
    network.check_input_size(input_size, input_size)
    times = {b: latency_times_ms(network, b, input_size, repeats) for b in batches}
    return Profile(network.num_parameters(), network.num_parameters(include_auxiliary=True),
                   count_macs(network, input_size), input_size, {b: statistics.median(t) for b, t in times.items()},
                   torch.get_num_threads(), str(next(network.parameters()).device),
                   {b: (min(t), max(t)) for b, t in times.items()}, repeats)
