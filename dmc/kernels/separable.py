"""The ``dmc::separable_conv2d`` operator: ``ReLU -> depthwise conv -> pointwise (1x1) conv`` as one opaque,
differentiable op that keeps only its input for the backward.

Eagerly, the pointwise conv stores the depthwise conv's output for its weight gradient: in a DARTS supernet that is
six activations per mixed edge (the four separable and dilated candidates' depthwise convs), a third of what a search
step stores. This op stores nothing but ``x`` (which its caller keeps anyway) and computes the depthwise conv again in
the backward, and only when the pointwise weight's gradient is asked for: the architecture step
(``backward(inputs=alphas)``) needs the input gradient alone, for which only the depthwise output's shape matters.
The depthwise conv is :func:`dmc.kernels.fused_depthwise_conv2d` (so ``relu(x)`` is never stored either; ``activated``
as there); the pointwise conv is PyTorch's (oneDNN).

Registered like ``dmc::depthwise_conv2d`` (:mod:`dmc.kernels.depthwise`): a plain-PyTorch implementation of the
forward and the backward for every device, overridden by the compiled CPU kernels and their C++ autograd formula
once loaded; a fake kernel for ``torch.compile``; a Python autograd formula elsewhere.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from dmc.kernels import native
from dmc.kernels.depthwise import depthwise_conv2d, output_shape
from dmc.kernels.layout import in_strides_of, layout_of

torch.library.define("dmc::separable_conv2d",
                     "(Tensor x, Tensor depthwise_weight, Tensor pointwise_weight, int stride, int padding, "
                     "int dilation, bool relu, Tensor? activated=None) -> Tensor")
torch.library.define("dmc::separable_conv2d_backward",
                     "(Tensor grad, Tensor x, Tensor depthwise_weight, Tensor pointwise_weight, int stride, "
                     "int padding, int dilation, bool relu, bool need_input, bool need_depthwise, "
                     "bool need_pointwise) -> (Tensor, Tensor, Tensor)")


class SeparableConv(Protocol):
    def __call__(self, x: torch.Tensor, depthwise_weight: torch.Tensor, pointwise_weight: torch.Tensor, stride: int,
                 padding: int, dilation: int, relu: bool, activated: torch.Tensor | None = None) -> torch.Tensor: ...


def separable_conv2d(x: torch.Tensor, depthwise_weight: torch.Tensor, pointwise_weight: torch.Tensor, stride: int,
                     padding: int, dilation: int, relu: bool, activated: torch.Tensor | None = None) -> torch.Tensor:
    """The eager reference: ``F.conv2d(depthwise_conv2d(x, ...), pointwise_weight)`` (``activated`` is ignored)."""
    return F.conv2d(depthwise_conv2d(x, depthwise_weight, stride, padding, dilation, relu), pointwise_weight)


def fused_separable_conv2d(x: torch.Tensor, depthwise_weight: torch.Tensor, pointwise_weight: torch.Tensor,
                           stride: int, padding: int, dilation: int, relu: bool,
                           activated: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`separable_conv2d` through ``dmc::separable_conv2d``; ``activated``, when given, must be ``relu(x)``
    without autograd history. The first call on CPU or CUDA tensors loads that device's compiled kernels or raises
    :class:`~dmc.kernels.native.KernelBuildError`."""
    native.load_for(x)
    return torch.ops.dmc.separable_conv2d(x, depthwise_weight, pointwise_weight, stride, padding, dilation, relu,
                                          activated)


def _forward_composite(x, depthwise_weight, pointwise_weight, stride, padding, dilation, relu, activated=None):
    depthwise = torch.ops.dmc.depthwise_conv2d(x, depthwise_weight, stride, padding, dilation, relu, activated)
    return F.conv2d(depthwise, pointwise_weight).contiguous(memory_format=layout_of(x))


def _backward_composite(grad, x, depthwise_weight, pointwise_weight, stride, padding, dilation, relu, need_input,
                        need_depthwise, need_pointwise):
    if need_pointwise:
        depthwise = torch.ops.dmc.depthwise_conv2d(x, depthwise_weight, stride, padding, dilation, relu)
    else:  # the input gradient reads only the depthwise output's shape
        depthwise = torch.empty(output_shape(x, depthwise_weight, stride, padding, dilation), dtype=x.dtype,
                                device=x.device, memory_format=layout_of(x))
    need_depthwise_output = need_input or need_depthwise
    grad_depthwise, grad_pointwise, _ = torch.ops.aten.convolution_backward(
        grad, depthwise, pointwise_weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
        [need_depthwise_output, need_pointwise, False])
    grad_x, grad_dw = x.new_empty(0), depthwise_weight.new_empty(0)
    if need_depthwise_output:
        grad_x, grad_dw = torch.ops.dmc.depthwise_conv2d_backward(grad_depthwise, x, depthwise_weight, stride,
                                                                  padding, dilation, relu, need_input, need_depthwise)
    return grad_x, grad_dw, (grad_pointwise if need_pointwise else pointwise_weight.new_empty(0))


torch.library.impl("dmc::separable_conv2d", "CompositeExplicitAutograd", _forward_composite)
torch.library.impl("dmc::separable_conv2d_backward", "CompositeExplicitAutograd", _backward_composite)


@torch.library.register_fake("dmc::separable_conv2d")
def _fake(x, depthwise_weight, pointwise_weight, stride, padding, dilation, relu, activated=None):
    n, _, h, w = output_shape(x, depthwise_weight, stride, padding, dilation)
    return x.new_empty((n, pointwise_weight.shape[0], h, w)).contiguous(memory_format=layout_of(x))


@torch.library.register_fake("dmc::separable_conv2d_backward")
def _backward_fake(grad, x, depthwise_weight, pointwise_weight, stride, padding, dilation, relu, need_input,
                   need_depthwise, need_pointwise):
    def like(t, needed):
        return t.new_empty(t.shape).contiguous(memory_format=layout_of(t)) if needed else t.new_empty(0)
    return like(x, need_input), like(depthwise_weight, need_depthwise), like(pointwise_weight, need_pointwise)


def _setup_context(ctx, inputs, output) -> None:
    x, depthwise_weight, pointwise_weight, ctx.stride, ctx.padding, ctx.dilation, ctx.relu, _ = inputs
    ctx.save_for_backward(x, depthwise_weight, pointwise_weight)


def _backward(ctx, grad):
    x, depthwise_weight, pointwise_weight = ctx.saved_tensors
    need_x, need_dw, need_pw = ctx.needs_input_grad[:3]
    grad_x, grad_dw, grad_pw = torch.ops.dmc.separable_conv2d_backward(
        grad, x, depthwise_weight, pointwise_weight, ctx.stride, ctx.padding, ctx.dilation, ctx.relu, need_x, need_dw,
        need_pw)
    return ((grad_x if need_x else None), (in_strides_of(depthwise_weight, grad_dw) if need_dw else None),
            (in_strides_of(pointwise_weight, grad_pw) if need_pw else None), None, None, None, None, None)


torch.library.register_autograd("dmc::separable_conv2d", _backward, setup_context=_setup_context)
