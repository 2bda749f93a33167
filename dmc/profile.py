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


def count_macs(network: CompiledNetwork, input_size: int) -> int:
    network = network.eval()
    x = torch.zeros(1, network.build_args.in_channels, input_size, input_size,
                    device=next(network.parameters()).device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network(x)
    return counter.get_total_flops() // 2


def median_ms(fn: Callable[[], object], repeats: int = 10, warmup: int = 2,
              synchronize: Callable[[], None] | None = None) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` runs after ``warmup`` untimed ones;
    ``synchronize`` (e.g. ``torch.cuda.synchronize``) runs before and after each timed call."""
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
    return statistics.median(times)


def measure_latency(network: CompiledNetwork, batch: int, input_size: int, repeats: int = 10, warmup: int = 2) -> float:
    """Median wall time of one eval forward pass, in milliseconds."""
    network = network.eval()
    device = next(network.parameters()).device
    x = torch.randn(batch, network.build_args.in_channels, input_size, input_size, device=device)
    with torch.no_grad():
        return median_ms(lambda: network(x), repeats, warmup,
                         torch.cuda.synchronize if device.type == "cuda" else None)


def profile(network: CompiledNetwork, input_size: int, batches: tuple[int, ...] = (1, 32), repeats: int = 10) -> Profile:
    """Parameters, MACs and latency of ``network`` at ``input_size`` x ``input_size``."""
    network.check_input_size(input_size, input_size)
    latency = {b: measure_latency(network, b, input_size, repeats) for b in batches}
    return Profile(network.num_parameters(), network.num_parameters(include_auxiliary=True),
                   count_macs(network, input_size), input_size, latency, torch.get_num_threads(),
                   str(next(network.parameters()).device))
