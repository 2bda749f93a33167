"""dmc::max_pool2d's CPU kernels against PyTorch's max pooling, at the S0 search's shapes.

    python benchmarks/max_pool_op.py [--threads 2] [--rounds 5] [--batch 32]

DARTS's max_pool_3x3 (padding 1) at strides 1 and 2 on channels-last inputs, as the supernet runs it. Compared:
- forward: PyTorch's ``max_pool2d_with_indices`` (what ``F.max_pool2d`` runs on CPU for an input that needs a
  gradient, indices included) vs ``dmc::max_pool2d`` (no indices);
- backward: PyTorch's index-based backward, reading the indices its forward saved, vs
  ``dmc::max_pool2d_backward`` (finds the maxima again as it adds the gradient);
- forward + backward through autograd, as a search runs them: ``F.max_pool2d`` (indices computed once, saved by
  autograd) vs ``dmc::max_pool2d``, each followed by ``torch.autograd.grad``.
Times are the median and range of interleaved rounds (20 calls each); ratios are per round, eager / dmc.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from dmc.kernels import native
from dmc.kernels.max_pool import recomputing_max_pool2d

SHAPES = [(16, 32, 32), (32, 16, 16), (64, 8, 8)]  # (channels, height, width) of S0's stages at 16 channels


def per_call_ms(fn, calls: int = 20) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    native.load("cpu")
    print(f"batch {args.batch}, {args.threads} threads, channels-last; eager / dmc, median (range) of "
          f"{args.rounds} interleaved rounds")
    for channels, side, _ in SHAPES:
        for stride in (1, 2):
            x = torch.randn(args.batch, channels, side, side).contiguous(memory_format=torch.channels_last)
            window = ([3, 3], [stride, stride], [1, 1])
            indices = torch.ops.aten.max_pool2d_with_indices(x, *window)[1]  # as the eager forward saves them
            grad = torch.randn(indices.shape).contiguous(memory_format=torch.channels_last)
            leaf = x.detach().requires_grad_()

            def through_autograd(pool):
                return lambda: torch.autograd.grad(pool(leaf, 3, stride, 1), leaf, grad)

            runs = {"forward": (lambda: torch.ops.aten.max_pool2d_with_indices(x, *window),
                                lambda: torch.ops.dmc.max_pool2d(x, 3, stride, 1)),
                    "backward": (lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                                     grad, x, *window, [1, 1], False, indices),
                                 lambda: torch.ops.dmc.max_pool2d_backward(grad, x, 3, stride, 1)),
                    "forward + backward": (through_autograd(F.max_pool2d), through_autograd(recomputing_max_pool2d))}
            times = {(what, impl): [] for what in runs for impl in ("eager", "dmc")}
            for eager, fused in runs.values():  # warm-up
                eager(), fused()
            for _ in range(args.rounds):
                for what, (eager, fused) in runs.items():
                    times[what, "eager"].append(per_call_ms(eager))
                    times[what, "dmc"].append(per_call_ms(fused))
            cells = []
            for what in runs:
                ratios = [e / f for e, f in zip(times[what, "eager"], times[what, "dmc"])]
                cells.append(f"{what} {statistics.median(times[what, 'eager']):.3f} / "
                             f"{statistics.median(times[what, 'dmc']):.3f} ms = {statistics.median(ratios):.2f}x "
                             f"({min(ratios):.2f}-{max(ratios):.2f})")
            print(f"{channels:2d} ch {side:2d}x{side:<2d} stride {stride}: {'; '.join(cells)}")


if __name__ == "__main__":
    main()
