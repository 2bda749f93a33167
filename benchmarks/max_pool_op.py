"""dmc::max_pool2d's CPU kernels against PyTorch's max pooling, at the S0 search's shapes.

    python benchmarks/max_pool_op.py [--threads 2] [--rounds 5] [--batch 32]

DARTS's max_pool_3x3 (padding 1) at strides 1 and 2 on channels-last inputs, as the supernet runs it. Compared:
- forward: PyTorch's ``max_pool2d_with_indices`` (what ``F.max_pool2d`` runs on CPU, indices included) vs
  ``dmc::max_pool2d`` (no indices);
- backward: PyTorch's index-based backward, with the indices recomputed as ``--kernels fused`` did before this
  kernel, vs ``dmc::max_pool2d_backward`` (finds the maxima again as it adds the gradient);
- both, forward + backward.
Times are the median and range of interleaved rounds (20 calls each); ratios are per round, eager / dmc.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dmc.kernels import native

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
            grad = torch.randn_like(torch.ops.aten.max_pool2d_with_indices(x, *window)[0])

            def eager_backward():
                indices = torch.ops.aten.max_pool2d_with_indices(x, *window)[1]
                torch.ops.aten.max_pool2d_with_indices_backward(grad, x, *window, [1, 1], False, indices)

            runs = {"forward": (lambda: torch.ops.aten.max_pool2d_with_indices(x, *window),
                                lambda: torch.ops.dmc.max_pool2d(x, 3, stride, 1)),
                    "backward": (eager_backward, lambda: torch.ops.dmc.max_pool2d_backward(grad, x, 3, stride, 1))}
            times = {(what, impl): [] for what in runs for impl in ("eager", "dmc")}
            for what, (eager, fused) in runs.items():  # warm-up
                eager(), fused()
            for _ in range(args.rounds):
                for what, (eager, fused) in runs.items():
                    times[what, "eager"].append(per_call_ms(eager))
                    times[what, "dmc"].append(per_call_ms(fused))
            cells = []
            for what in (*runs, "both"):
                parts = list(runs) if what == "both" else [what]
                eager = [sum(r) for r in zip(*(times[p, "eager"] for p in parts))]
                fused = [sum(r) for r in zip(*(times[p, "dmc"] for p in parts))]
                ratios = [e / f for e, f in zip(eager, fused)]
                cells.append(f"{what} {statistics.median(eager):.3f} / {statistics.median(fused):.3f} ms = "
                             f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")
            print(f"{channels:2d} ch {side:2d}x{side:<2d} stride {stride}: {'; '.join(cells)}")


if __name__ == "__main__":
    main()
