"""dmc::batchnorm_mixed_sum against what it replaces, at the S0 search's shapes, on CPU.

    python benchmarks/batchnorm_sum_op.py [--threads 2] [--rounds 5] [--batch 32]

One mixed edge of S0 has six candidates ending with a training-mode BatchNorm(affine=False) (two separable and two
dilated convs, two pools with their batch norm) and two plain inputs (the identity skip and DARTS-'s auxiliary
skip). Compared, forward + backward (every input gradient and the weights'), channels-last:
- "eager": six ``BatchNorm2d`` then the eager weighted sum (``--kernels reference``);
- "fused sum": six ``BatchNorm2d`` then ``dmc::mixed_sum`` (dmc's default before this operator);
- "batchnorm sum": ``dmc::batchnorm_mixed_sum``.
Times are the median and range of interleaved rounds (each round times every implementation once, 5 calls each);
ratios are per round against "batchnorm sum". Also printed: what autograd stores for the backward ("stores").
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from dmc.kernels import fused_mixed_sum, mixed_sum, native
from dmc.kernels.batchnorm_sum import fused_batchnorm_mixed_sum

SHAPES = [(16, 32, 32), (32, 16, 16), (64, 8, 8)]  # (channels, height, width) of S0's three stages at 16 channels


def eager(zs, norms, ys, w):
    return mixed_sum([norm(z) for norm, z in zip(norms, zs)] + ys, w)


def fused_sum(zs, norms, ys, w):
    return fused_mixed_sum([norm(z) for norm, z in zip(norms, zs)] + ys, w)


IMPLEMENTATIONS = {"eager": eager, "fused sum": fused_sum, "batchnorm sum": fused_batchnorm_mixed_sum}


def saved_bytes(fn, zs, norms, ys, w) -> int:
    total = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: total.append(t.nbytes) or t, lambda t: t):
        fn(zs, norms, ys, w)
    return sum(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    native.load("cpu")
    for channels, height, width in SHAPES:
        shape = (args.batch, channels, height, width)

        def tensor():
            return torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_()
        zs, ys = [tensor() for _ in range(6)], [tensor() for _ in range(2)]
        w, grad = torch.rand(8, requires_grad=True), torch.randn_like(zs[0])
        norms = [nn.BatchNorm2d(channels, affine=False) for _ in zs]
        times = {name: [] for name in IMPLEMENTATIONS}
        for _ in range(args.rounds + 1):  # the first round warms up
            for name, fn in IMPLEMENTATIONS.items():
                started = time.perf_counter()
                for _ in range(5):
                    torch.autograd.grad(fn(zs, norms, ys, w), [*zs, *ys, w], grad)
                times[name].append((time.perf_counter() - started) / 5 * 1e3)
        times = {name: t[1:] for name, t in times.items()}
        line = []
        for name, fn in IMPLEMENTATIONS.items():
            ratios = [a / b for a, b in zip(times[name], times["batchnorm sum"])]
            line.append(f"{name} {statistics.median(times[name]):.2f} ms ({min(times[name]):.2f}-"
                        f"{max(times[name]):.2f}), {statistics.median(ratios):.2f}x "
                        f"({min(ratios):.2f}-{max(ratios):.2f}), "
                        f"stores {saved_bytes(fn, zs, norms, ys, w) / 2**20:.0f} MiB")
        print(f"{shape}: " + "; ".join(line), flush=True)
    print(f"(forward + backward, channels-last, {args.threads} threads; median and range of {args.rounds} interleaved "
          "rounds; ratios: time / the batchnorm sum's time in the same round)")


if __name__ == "__main__":
    main()
