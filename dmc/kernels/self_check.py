"""A parity check the fused kernels pass on a device before a search uses them.

Kernels that build are not yet kernels that compute the right thing on this device (the CUDA kernels had never
run on a GPU when this was written): :func:`check_fused` runs every fused operator forward and backward against
its eager reference on small inputs, once per device type and process (:data:`RESULTS`): ``dmc::mixed_sum`` on
contiguous and channels-last inputs, with and without the auxiliary branch; ``dmc::depthwise_conv2d`` with and
without its ReLU, and with the ReLU shared (``activated=relu(x)``, as a mixed edge hands it to its candidates), for
every kernel size, dilation and stride a search space uses, on both layouts; ``dmc::max_pool2d`` at strides 1 and 2 on
both layouts, ties included, against max pooling written without PyTorch's pooling kernels (on CUDA the operator
*is* ``F.max_pool2d``); and, where they have kernels (CPU), ``dmc::batchnorm_mixed_sum`` and ``dmc::batchnorm_act``
(ReLU and ReLU6) on both layouts, running statistics included, and ``dmc::separable_conv2d`` (undilated and
dilated, strided cases, the ReLU shared or not) on both layouts.

Each output, gradient and running statistic is measured against its own scale: a small gradient's error is not
hidden by a large output.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from dmc.kernels.batchnorm_act import batchnorm_act, fused_batchnorm_act
from dmc.kernels.batchnorm_sum import batchnorm_mixed_sum, fused_batchnorm_mixed_sum
from dmc.kernels.depthwise import depthwise_conv2d, fused_depthwise_conv2d
from dmc.kernels.max_pool import recomputing_max_pool2d
from dmc.kernels.operator import fused_mixed_sum
from dmc.kernels.reference import mixed_sum
from dmc.kernels.separable import fused_separable_conv2d, separable_conv2d

TOLERANCE = 1e-5
"""Largest difference allowed between a fused result and its reference, relative to the largest value of that
reference tensor (float32 rounding is ~1e-7)."""
DEPTHWISE_CASES = tuple(itertools.product((3, 5, 7), (1, 2), (1, 2), (False, True)))
"""(kernel, dilation, stride, relu) of every depthwise case checked (those with the ReLU twice: see
:func:`relu_sharing`)."""
SEPARABLE_CASES = ((3, 1, 1, True), (5, 2, 2, False), (5, 2, 2, True))
"""(kernel, dilation, stride, relu) of every separable case checked (as the depthwise cases)."""


class CheckResults:
    """The check's result per device type. It depends only on the kernels loaded for that device type, which stay
    loaded as long as the process lives (:func:`dmc.kernels.native.load`), so each is computed once."""

    def __init__(self) -> None:
        self._by_device_type: dict[str, float] = {}

    def get(self, device_type: str) -> float | None:
        return self._by_device_type.get(device_type)

    def put(self, device_type: str, error: float) -> None:
        self._by_device_type[device_type] = error

    def clear(self) -> None:
        """Forgets every result: for tests that swap an operator for a wrong one and check again."""
        self._by_device_type.clear()


RESULTS = CheckResults()
"""This process's results (:func:`check_fused`)."""


def check_fused(device: torch.device | str) -> float:
    """The largest relative difference between a fused operator and its reference on ``device``, over outputs,
    input gradients and running statistics, each against its own largest reference value; computed once per
    device type and process (:data:`RESULTS`)."""
    device = torch.device(device)
    known = RESULTS.get(device.type)
    if known is None:
        layouts = (torch.contiguous_format, torch.channels_last)
        known = max(
            *(_mixed_sum_difference(device, layout, aux) for layout in layouts for aux in (False, True)),
            *(_depthwise_difference(device, layout, *case, shared) for layout in layouts for case in DEPTHWISE_CASES
              for shared in relu_sharing(case)),
            *(_batchnorm_sum_difference(device, layout) for layout in layouts if device.type == "cpu"),
            *(_batchnorm_act_difference(device, layout, activation) for layout in layouts
              for activation in ("relu", "relu6") if device.type == "cpu"),
            *(_separable_difference(device, layout, *case, shared) for layout in layouts for case in SEPARABLE_CASES
              for shared in relu_sharing(case) if device.type == "cpu"),
            *(_max_pool_difference(device, layout, stride) for layout in layouts for stride in (1, 2)))
        RESULTS.put(device.type, known)
    return known


def relu_sharing(case: tuple[int, int, int, bool]) -> tuple[bool, ...]:
    """How a convolution case is checked: with its own ReLU, and where it has one, also with ``relu(x)`` handed in
    as ``activated`` (computed once by a mixed edge for its candidates, as searches run them)."""
    return (False, True) if case[-1] else (False,)


def _random(device: torch.device):
    generator = torch.Generator().manual_seed(0)
    return lambda *size: torch.randn(*size, generator=generator).to(device)


def _difference(results: list[list[torch.Tensor]]) -> float:
    """The largest relative difference between the fused results (``results[0]``) and the reference's."""
    return max(_relative_difference(result, reference) for result, reference in zip(*results))


def _relative_difference(result: torch.Tensor, reference: torch.Tensor) -> float:
    """``max |result - reference|`` over ``max |reference|`` (absolute where the reference is all zero); NaN
    anywhere is an infinite difference, so that no ordering of the cases lets it through ``max``."""
    difference = (result - reference).abs().max().item()
    return math.inf if math.isnan(difference) else difference / (reference.abs().max().item() or 1.0)


def _shared_relu(x: torch.Tensor, shared: bool) -> torch.Tensor | None:
    """``activated`` as a mixed edge computes it for its candidates: ``relu(x)`` without autograd history."""
    return x.detach().relu() if shared else None


def _mixed_sum_difference(device: torch.device, layout: torch.memory_format, aux: bool) -> float:
    tensor = _random(device)
    shape = (3, 5, 7, 6)  # odd sizes: no kernel can rely on vector-width multiples
    ys = [tensor(*shape).contiguous(memory_format=layout) for _ in range(3)]
    weights, beta = tensor(3).softmax(0), tensor(1).reshape(())
    branch = tensor(*shape).contiguous(memory_format=layout) if aux else None
    grad = tensor(*shape)
    results = []
    for implementation in (fused_mixed_sum, mixed_sum):
        inputs = [y.detach().requires_grad_() for y in ys]
        w = weights.detach().requires_grad_()
        out = implementation(inputs, w, branch, beta if aux else None)
        out.backward(grad)
        results.append([out.detach(), *(x.grad for x in inputs), w.grad])
    return _difference(results)


def _depthwise_difference(device: torch.device, layout: torch.memory_format, kernel: int, dilation: int,
                          stride: int, relu: bool, shared: bool) -> float:
    tensor = _random(device)
    x = tensor(2, 21, 11, 9).contiguous(memory_format=layout)  # 21 channels: vector blocks and a scalar rest
    weight = tensor(21, 1, kernel, kernel)
    padding = dilation * (kernel - 1) // 2
    results = []
    # the reference in float64: cuDNN's float32 convolutions may round through TF32 (~1e-3 relative)
    for implementation, dtype in ((fused_depthwise_conv2d, torch.float32), (depthwise_conv2d, torch.float64)):
        inputs, w = x.detach().to(dtype).requires_grad_(), weight.detach().to(dtype).requires_grad_()
        out = implementation(inputs, w, stride, padding, dilation, relu, _shared_relu(inputs, shared))
        out.backward(torch.ones_like(out).cumsum(-1).sin())
        results.append([t.double() for t in (out.detach(), inputs.grad, w.grad)])
    return _difference(results)


def _separable_difference(device: torch.device, layout: torch.memory_format, kernel: int, dilation: int,
                          stride: int, relu: bool, shared: bool) -> float:
    tensor = _random(device)
    x = tensor(3, 21, 9, 8).contiguous(memory_format=layout)
    depthwise, pointwise = tensor(21, 1, kernel, kernel), tensor(10, 21, 1, 1)
    results = []
    for implementation, dtype in ((fused_separable_conv2d, torch.float32), (separable_conv2d, torch.float64)):
        leaves = [t.detach().to(dtype).requires_grad_() for t in (x, depthwise, pointwise)]
        out = implementation(leaves[0], leaves[1], leaves[2], stride, dilation * (kernel - 1) // 2, dilation, relu,
                             _shared_relu(leaves[0], shared))
        out.backward(torch.ones_like(out).cumsum(-1).sin())
        results.append([t.double() for t in (out.detach(), *(leaf.grad for leaf in leaves))])
    return _difference(results)


def _batchnorm_sum_difference(device: torch.device, layout: torch.memory_format) -> float:
    tensor = _random(device)
    shape = (3, 21, 7, 5)
    zs = [(tensor(*shape) * 2 + 1).contiguous(memory_format=layout) for _ in range(3)]
    ys = [tensor(*shape).contiguous(memory_format=layout) for _ in range(2)]
    weights, grad = tensor(5).softmax(0), tensor(*shape)
    results = []
    for implementation in (fused_batchnorm_mixed_sum, batchnorm_mixed_sum):
        inputs = [t.detach().requires_grad_() for t in zs + ys]
        w = weights.detach().requires_grad_()
        norms = [nn.BatchNorm2d(shape[1], affine=False).to(device) for _ in zs]
        out = implementation(inputs[:3], norms, inputs[3:], w)
        out.backward(grad)
        results.append([out.detach(), *(t.grad for t in inputs), w.grad,
                        *(s for norm in norms for s in (norm.running_mean, norm.running_var))])
    return _difference(results)


def _batchnorm_act_difference(device: torch.device, layout: torch.memory_format, activation: str) -> float:
    tensor = _random(device)
    shape = (3, 21, 7, 5)
    z, grad = tensor(*shape), tensor(*shape)
    z[0, :, 0, 0] = 100  # an outlier per channel: normalised to ~10, which ReLU6 clips
    z = z.contiguous(memory_format=layout)
    results = []
    for implementation in (fused_batchnorm_act, batchnorm_act):
        inputs = z.detach().requires_grad_()
        norm = nn.BatchNorm2d(shape[1], affine=False).to(device)
        out = implementation(inputs, norm, activation)
        out.backward(grad)
        results.append([out.detach(), inputs.grad, norm.running_mean, norm.running_var])
    return _difference(results)


def _max_pool_difference(device: torch.device, layout: torch.memory_format, stride: int) -> float:
    x = _random(device)(2, 21, 9, 8).round().contiguous(memory_format=layout)  # rounded: ties
    results = []
    for implementation, dtype in ((recomputing_max_pool2d, torch.float32), (_unfolded_max_pool2d, torch.float64)):
        inputs = x.detach().to(dtype).requires_grad_()
        out = implementation(inputs, 3, stride, 1)
        out.backward(torch.ones_like(out).cumsum(-1).sin())
        results.append([t.double() for t in (out.detach(), inputs.grad)])
    return _difference(results)


def _unfolded_max_pool2d(x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """Max pooling without PyTorch's pooling kernels, the max pool's reference: every window of ``x`` padded with
    -inf, unfolded, reduced by ``torch.max``, which returns (and sends the gradient to) the first maximum of a
    window in its row-major order, the element PyTorch's max pooling picks among ties. For finite ``x`` (a window
    of -inf would send its gradient to the padding)."""
    n, c, h, w = x.shape
    windows = F.unfold(F.pad(x, [padding] * 4, value=-math.inf), kernel, stride=stride)
    out = windows.view(n, c, kernel * kernel, -1).max(2).values
    return out.view(n, c, (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1)
