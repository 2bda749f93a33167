"""The fused ``dmc::depthwise_conv2d`` (ReLU -> depthwise conv) vs eager ReLU + oneDNN's depthwise conv, on CPU.

    python benchmarks/depthwise_op.py [--threads 2] [--rounds 5] [--repeats 10]

Shapes: the inputs of the DARTS S0 supernet's separable and dilated convs (16 channels, batch 32, 32x32 images,
at its three widths), channels-last as the supernet runs them, for every (kernel, dilation) the space uses and
strides 1 and 2. Four measurements per case, three as a search step needs them: forward alone; forward + input
gradient (the architecture step, which needs no weight gradient); forward + both gradients (the weight step); and
the weight gradient alone (oneDNN's on ``relu(x)`` vs the op's backward asked for that gradient only: the one part
that is dmc's own kernel at every shape, where the forward and the undilated input gradient are oneDNN's).
Gradients through ``torch.autograd.grad`` as inside a network. Each round times every case of both
implementations in turn; the table gives the median over rounds of eager / fused and its range.
Target (issue 15): >= 1.5x forward + backward wherever the fused op replaces oneDNN.
"""

from __future__ import annotations

import argparse
import itertools
import statistics

import torch

from dmc.kernels import depthwise_conv2d, fused_depthwise_conv2d, native
from dmc.profile import median_ms

SHAPES = [(32, 16, 32, 32), (32, 32, 16, 16), (32, 64, 8, 8)]
KERNELS = [(3, 1), (5, 1), (3, 2), (5, 2)]  # sep_conv_3x3/5x5, dil_conv_3x3/5x5
PASSES = ("forward", "fwd + grad x", "fwd + both grads", "weight grad alone")


def runner(impl, x, w, stride, dilation, grad, which):
    padding = dilation * (w.shape[-1] - 1) // 2
    if which == "weight grad alone":  # the one part of the op that is dmc's own at every shape
        if impl is depthwise_conv2d:
            return lambda: torch.ops.aten.convolution_backward(grad, x.relu(), w, None, [stride] * 2, [padding] * 2,
                                                               [dilation] * 2, False, [0, 0], x.shape[1],
                                                               [False, True, False])
        return lambda: torch.ops.dmc.depthwise_conv2d_backward(grad, x, w, stride, padding, dilation, True, False,
                                                               True)
    inputs = {"forward": None, "fwd + grad x": (x,), "fwd + both grads": (x, w)}[which]
    if inputs is None:
        return lambda: impl(x, w, stride, padding, dilation, True)
    return lambda: torch.autograd.grad(impl(x, w, stride, padding, dilation, True), inputs, grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10, help="calls per timing (their median)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    native.load("cpu")
    cases = []
    for shape, (k, d), stride in itertools.product(SHAPES, KERNELS, (1, 2)):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(shape, generator=gen).contiguous(memory_format=torch.channels_last).requires_grad_()
        w = torch.randn(shape[1], 1, k, k, generator=gen).requires_grad_()
        grad = torch.randn_like(depthwise_conv2d(x, w, stride, d * (k - 1) // 2, d, True))
        cases.append(((shape, k, d, stride), x, w, grad))
    ratios = {(c[0], p): [] for c in cases for p in PASSES}
    for _ in range(args.rounds):
        for key, x, w, grad in cases:
            for which in PASSES:
                eager, fused = (median_ms(runner(impl, x, w, key[3], key[2], grad, which), args.repeats, warmup=2)
                                for impl in (depthwise_conv2d, fused_depthwise_conv2d))
                ratios[(key, which)].append(eager / fused)
    print(f"threads {args.threads}, float32, channels-last, ReLU on; eager / fused: median (range) of "
          f"{args.rounds} rounds")
    print(f"{'shape':>18} {'k':>2} {'d':>2} {'s':>2} " + " ".join(f"{p:>22}" for p in PASSES))
    for key, *_ in cases:
        shape, k, d, stride = key
        cells = [ratios[(key, p)] for p in PASSES]
        print(f"{str(shape):>18} {k:>2} {d:>2} {stride:>2} " + " ".join(
            f"{statistics.median(r):>9.2f}x ({min(r):.2f}-{max(r):.2f})" for r in cells))


if __name__ == "__main__":
    main()
