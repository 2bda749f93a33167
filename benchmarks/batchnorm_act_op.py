"""dmc::batchnorm_act against the eager batch norm and activation it replaces, at the S5 chain search's shapes, on CPU.

    python benchmarks/batchnorm_act_op.py [--threads 2] [--rounds 5] [--activation relu6]

Every candidate of an S5 (ProxylessNAS-like) mixed layer is an inverted residual whose expansion and depthwise
convs each end with a training-mode ``BatchNorm2d(affine=False) -> ReLU6``; the shapes below are the most common
ones of ``benchmarks/search_step.py --space proxyless_s5`` (width 0.35, batch 16, 128-pixel images), one per
stage. Compared, forward + backward (the input's gradient), channels-last:
- "eager": ``BatchNorm2d`` then the activation module (``--kernels reference``);
- "fused": ``dmc::batchnorm_act``.
Times are the median and range of interleaved rounds (each round times both, 5 calls each); ratios are per round,
eager / fused. Also printed: what autograd stores for the backward ("stores").
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from dmc.kernels import native
from dmc.kernels.batchnorm_act import batchnorm_act, fused_batchnorm_act

SHAPES = [(16, 96, 32, 32), (16, 48, 64, 64), (16, 96, 16, 16), (16, 192, 8, 8), (16, 384, 4, 4)]
IMPLEMENTATIONS = {"eager": batchnorm_act, "fused": fused_batchnorm_act}


def saved_bytes(fn, z, norm, activation) -> int:
    total = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: total.append(t.nbytes) or t, lambda t: t):
        fn(z, norm, activation)
    return sum(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--activation", choices=("relu", "relu6"), default="relu6")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    native.load("cpu")
    for shape in SHAPES:
        z = torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_()
        grad = torch.randn_like(z)
        norm = nn.BatchNorm2d(shape[1], affine=False)
        times = {name: [] for name in IMPLEMENTATIONS}
        for _ in range(args.rounds + 1):  # the first round warms up
            for name, fn in IMPLEMENTATIONS.items():
                started = time.perf_counter()
                for _ in range(5):
                    torch.autograd.grad(fn(z, norm, args.activation), z, grad)
                times[name].append((time.perf_counter() - started) / 5 * 1e3)
        times = {name: t[1:] for name, t in times.items()}
        ratios = [a / b for a, b in zip(times["eager"], times["fused"])]
        line = [f"{name} {statistics.median(t):.2f} ms ({min(t):.2f}-{max(t):.2f}), stores "
                f"{saved_bytes(IMPLEMENTATIONS[name], z, norm, args.activation) / 2**20:.1f} MiB"
                for name, t in times.items()]
        print(f"{shape}: " + "; ".join(line) + f"; eager/fused {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}-{max(ratios):.2f})", flush=True)
    print(f"(forward + backward, channels-last, {args.activation}, {args.threads} threads; median and range of "
          f"{args.rounds} interleaved rounds)")


if __name__ == "__main__":
    main()
