"""The ``dmc::depthwise_conv2d`` operator: ``conv2d(relu(x) if relu else x, weight, groups=C)`` as one opaque,
differentiable op.

DARTS's separable and dilated convolutions start with ``ReLU -> depthwise conv``; this op reads ``x`` through the
ReLU on the fly, so the ReLU's output is never stored (the backward masks with ``x > 0``), and its backward
computes the input and weight gradients with kernels written for the supernet's channels-last shapes, where
oneDNN's depthwise backward takes slow paths (5x5 and dilated kernels, see ``benchmarks/depthwise_op.py``).
Square kernels, no bias, any stride, padding and dilation. A caller that runs several of these convolutions on
one input (a mixed edge's separable and dilated candidates) may pass ``activated=relu(x)``, computed once, which the
CPU forward then uses instead of its own ReLU; it is never stored, and autograd still sees only ``x``.

Registered with ``torch.library`` like ``dmc::mixed_sum`` (:mod:`dmc.kernels.operator`): a plain-PyTorch
implementation for every device, overridden by the compiled CPU and CUDA kernels once loaded; a fake kernel for
``torch.compile``/``torch.export``; and an autograd formula through ``dmc::depthwise_conv2d_backward``, which
computes only the gradients autograd asks for (the architecture step needs no weight gradients).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from dmc.kernels import native
from dmc.kernels.layout import in_strides_of, layout_of

torch.library.define("dmc::depthwise_conv2d",
                     "(Tensor x, Tensor weight, int stride, int padding, int dilation, bool relu, "
                     "Tensor? activated=None) -> Tensor")
torch.library.define("dmc::depthwise_conv2d_backward",
                     "(Tensor grad, Tensor x, Tensor weight, int stride, int padding, int dilation, bool relu, "
                     "bool need_input, bool need_weight) -> (Tensor, Tensor)")


class DepthwiseConv(Protocol):
    def __call__(self, x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, dilation: int,
                 relu: bool, activated: torch.Tensor | None = None) -> torch.Tensor: ...


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, dilation: int,
                     relu: bool, activated: torch.Tensor | None = None) -> torch.Tensor:
    """The eager reference: ``F.conv2d(relu(x) if relu else x, weight, None, stride, padding, dilation, C)``.
    ``activated`` is ignored: the reference keeps one ReLU per convolution, as DARTS's code does."""
    return F.conv2d(x.relu() if relu else x, weight, None, stride, padding, dilation, x.shape[1])


def fused_depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, dilation: int,
                           relu: bool, activated: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`depthwise_conv2d` through ``dmc::depthwise_conv2d``; ``activated``, when given, must be ``relu(x)``
    (without autograd history: its gradient is not computed). The first call on CPU or CUDA tensors loads the
    fused kernels of that device (compiling them at their first use on the machine) or raises
    :class:`~dmc.kernels.native.KernelBuildError`: the operator never silently runs its plain-PyTorch fallback."""
    native.load_for(x)
    return torch.ops.dmc.depthwise_conv2d(x, weight, stride, padding, dilation, relu, activated)


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def output_shape(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int,
                 dilation: int) -> tuple[int, int, int, int]:
    """The depthwise convolution's output shape for input ``x`` and a (C, 1, K, K) ``weight``."""
    n, c, h, w = x.shape
    k = weight.shape[-1]
    return n, c, output_size(h, k, stride, padding, dilation), output_size(w, k, stride, padding, dilation)


@torch.library.impl("dmc::depthwise_conv2d", "CompositeExplicitAutograd")
def _reference(x, weight, stride, padding, dilation, relu, activated=None):
    return depthwise_conv2d(x, weight, stride, padding, dilation, relu)


@torch.library.impl("dmc::depthwise_conv2d_backward", "CompositeExplicitAutograd")
def _backward_reference(grad, x, weight, stride, padding, dilation, relu, need_input, need_weight):
    source = x.relu() if relu else x
    grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
        grad, source, weight, None, [stride] * 2, [padding] * 2, [dilation] * 2, False, [0, 0], x.shape[1],
        [need_input, need_weight, False])
    if need_input and relu:
        grad_x = grad_x.masked_fill(x <= 0, 0)
    return (grad_x if need_input else x.new_empty(0)), (grad_w if need_weight else weight.new_empty(0))


@torch.library.register_fake("dmc::depthwise_conv2d")
def _fake(x, weight, stride, padding, dilation, relu, activated=None):
    return _like(x, output_shape(x, weight, stride, padding, dilation))


@torch.library.register_fake("dmc::depthwise_conv2d_backward")
def _backward_fake(grad, x, weight, stride, padding, dilation, relu, need_input, need_weight):
    return (_like(x, x.shape) if need_input else x.new_empty(0)), \
        (_like(weight, weight.shape) if need_weight else weight.new_empty(0))


def _like(model: torch.Tensor, shape) -> torch.Tensor:
    """A result laid out as the kernels lay it out (:func:`dmc.kernels.layout.layout_of`)."""
    return model.new_empty(shape).contiguous(memory_format=layout_of(model))


def _setup_context(ctx, inputs, output) -> None:
    x, weight, ctx.stride, ctx.padding, ctx.dilation, ctx.relu, _ = inputs
    ctx.save_for_backward(x, weight)


def _backward(ctx, grad):
    x, weight = ctx.saved_tensors
    need_input, need_weight = ctx.needs_input_grad[:2]
    grad_x, grad_w = torch.ops.dmc.depthwise_conv2d_backward(grad, x, weight, ctx.stride, ctx.padding, ctx.dilation,
                                                             ctx.relu, need_input, need_weight)
    grad_w = in_strides_of(weight, grad_w) if need_weight else None
    return (grad_x if need_input else None), grad_w, None, None, None, None, None


torch.library.register_autograd("dmc::depthwise_conv2d", _backward, setup_context=_setup_context)
