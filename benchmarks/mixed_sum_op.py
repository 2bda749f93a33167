"""The fused ``dmc::mixed_sum`` operator vs the eager expression, forward + backward, on CPU.

    python benchmarks/mixed_sum_op.py [--threads 2] [--repeats 30] [--k 8]

Shapes are the mixed-edge outputs of the DARTS S0 supernet (16 channels, batch 32, 32x32 images) at
its three widths. The baseline is the eager ``beta * a + sum_k w_k * y_k`` with autograd (gradients
taken with ``torch.autograd.grad``, as inside a network: no leaf accumulation). The floor is the bytes
the fused op must move (forward: read K inputs, write 1; backward: read the gradient and K inputs,
write K gradients; K counts the auxiliary branch) divided by the bandwidth of a copy as large as the
op's working set, into a fresh tensor like the op's outputs, measured here, now.
Targets: fused at least 2x faster than eager, and within 1.5x of the floor.
"""

from __future__ import annotations

import argparse

import torch

from dmc.kernels import fused_mixed_sum, mixed_sum, native
from dmc.profile import median_ms

SHAPES = [(32, 16, 32, 32), (32, 32, 16, 16), (32, 64, 8, 8)]


def step(impl, ys, w, a, beta, grad):
    torch.autograd.grad(impl(ys, w, a, beta), [*ys, w, a], grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--k", type=int, default=8, help="inputs including the auxiliary branch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    native.load("cpu")
    print(f"threads {args.threads}, K = {args.k} (incl. auxiliary), float32, forward + backward")
    print(f"{'shape':>18} {'eager ms':>9} {'fused ms':>9} {'floor ms':>9} {'eager/fused':>12} {'fused/floor':>12}")
    for shape in SHAPES:
        gen = torch.Generator().manual_seed(0)
        ys = [torch.randn(shape, generator=gen).requires_grad_() for _ in range(args.k - 1)]
        a = torch.randn(shape, generator=gen).requires_grad_()
        w = torch.randn(args.k - 1, generator=gen).softmax(0).requires_grad_()
        beta, grad = torch.tensor(0.7), torch.randn(shape, generator=gen)
        eager = median_ms(lambda: step(mixed_sum, ys, w, a, beta, grad), args.repeats, warmup=3)
        fused = median_ms(lambda: step(fused_mixed_sum, ys, w, a, beta, grad), args.repeats, warmup=3)
        k = args.k
        moved = ((k + 1) + (2 * k + 1)) * grad.nbytes  # forward + backward bytes
        source = torch.randn(moved // 8)  # a copy reads and writes half the working set each
        copy_ms = median_ms(lambda: torch.empty_like(source).copy_(source), args.repeats, warmup=3)
        floor = moved * copy_ms / (2 * source.nbytes)
        print(f"{str(shape):>18} {eager:9.2f} {fused:9.2f} {floor:9.2f} {eager / fused:11.2f}x {fused / floor:11.2f}x")


if __name__ == "__main__":
    main()
