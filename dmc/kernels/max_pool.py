"""The ``dmc::max_pool2d`` operator: ``F.max_pool2d`` that stores no indices for its backward.

PyTorch's max pooling keeps an int64 index per output element for the backward: twice the output's own size in
float32, and in a DARTS supernet, where every edge has a max-pool candidate, about a tenth of the search's
activation memory. This operator keeps only its input (which the edge keeps anyway: every candidate reads it) and
finds the maxima again in the backward, one more pooling pass. Same results, bit for bit: the backward pools the
same input the same way.

Registered with ``torch.library`` like the other operators: plain-PyTorch implementations for every device, which
the compiled CPU kernels override once loaded (``csrc/max_pool_cpu.cpp``: channels-last pooling vectorised over
the channels; at the search's shapes 1.3-2.4x PyTorch's forward with indices, but 0.4-0.7x its backward, which
reads the saved indices where this one pools again: forward + backward about even, 0.75-1.65x, see
``benchmarks/RESULTS.md``); a fake kernel for ``torch.compile``; an autograd formula through
``dmc::max_pool2d_backward``.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from dmc.kernels import native

torch.library.define("dmc::max_pool2d", "(Tensor x, int kernel, int stride, int padding) -> Tensor")
torch.library.define("dmc::max_pool2d_backward",
                     "(Tensor grad, Tensor x, int kernel, int stride, int padding) -> Tensor")


class MaxPoolFunction(Protocol):
    """A max pooling's implementation (the module is :class:`dmc.ops.pool.MaxPool`)."""

    def __call__(self, x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor: ...


def max_pool2d(x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """The eager reference: ``F.max_pool2d(x, kernel, stride, padding)``."""
    return F.max_pool2d(x, kernel, stride, padding)


def recomputing_max_pool2d(x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """:func:`max_pool2d` through ``dmc::max_pool2d``: the backward finds the maxima again instead of storing them.

    The first call on CPU tensors loads the fused kernels (compiling them at their first use on the machine) or
    raises :class:`~dmc.kernels.native.KernelBuildError`; other devices run the plain-PyTorch implementation."""
    native.load_for(x)
    return torch.ops.dmc.max_pool2d(x, kernel, stride, padding)


@torch.library.impl("dmc::max_pool2d", "CompositeExplicitAutograd")
def _forward(x, kernel, stride, padding):
    return F.max_pool2d(x, kernel, stride, padding)


@torch.library.impl("dmc::max_pool2d_backward", "CompositeExplicitAutograd")
def _backward_impl(grad, x, kernel, stride, padding):
    _, indices = torch.ops.aten.max_pool2d_with_indices(x, [kernel, kernel], [stride, stride], [padding, padding])
    return torch.ops.aten.max_pool2d_with_indices_backward(grad, x, [kernel, kernel], [stride, stride],
                                                            [padding, padding], [1, 1], False, indices)


@torch.library.register_fake("dmc::max_pool2d")
def _forward_fake(x, kernel, stride, padding):
    return F.max_pool2d(x, kernel, stride, padding)  # fake tensors: shape, dtype and layout only


@torch.library.register_fake("dmc::max_pool2d_backward")
def _backward_fake(grad, x, kernel, stride, padding):
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output) -> None:
    x, ctx.kernel, ctx.stride, ctx.padding = inputs
    ctx.save_for_backward(x)


def _backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return torch.ops.dmc.max_pool2d_backward(grad, x, ctx.kernel, ctx.stride, ctx.padding), None, None, None


torch.library.register_autograd("dmc::max_pool2d", _backward, setup_context=_setup_context)
