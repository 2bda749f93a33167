"""A parity check the fused kernels pass on a device before a search uses them.

Kernels that build are not yet kernels that compute the right thing on this device (the CUDA kernels had never
run on a GPU when this was written): :func:`check_fused` runs every fused operator forward and backward against
its eager reference on small inputs, once per device type and process: ``dmc::mixed_sum`` on contiguous and
channels-last inputs, with and without the auxiliary branch; ``dmc::depthwise_conv2d`` with and without its
ReLU for every kernel size, dilation and stride a search space uses, on both layouts; ``dmc::max_pool2d`` at
strides 1 and 2 on both layouts, ties included; and, where they have kernels (CPU), ``dmc::batchnorm_mixed_sum``
and ``dmc::batchnorm_act`` (ReLU and ReLU6) on both layouts, running statistics included, and
``dmc::separable_conv2d`` (an undilated and a dilated, strided case) on both layouts.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from dmc.kernels.batchnorm_act import batchnorm_act, fused_batchnorm_act
from dmc.kernels.batchnorm_sum import batchnorm_mixed_sum, fused_batchnorm_mixed_sum
from dmc.kernels.depthwise import depthwise_conv2d, fused_depthwise_conv2d
from dmc.kernels.max_pool import max_pool2d, recomputing_max_pool2d
from dmc.kernels.operator import fused_mixed_sum
from dmc.kernels.reference import mixed_sum
from dmc.kernels.separable import fused_separable_conv2d, separable_conv2d

TOLERANCE = 1e-5
"""Largest absolute difference allowed, relative to the largest reference value (float32 rounding is ~1e-7)."""
DEPTHWISE_CASES = tuple(itertools.product((3, 5, 7), (1, 2), (1, 2), (False, True)))
"""(kernel, dilation, stride, relu) of every depthwise case checked."""
SEPARABLE_CASES = ((3, 1, 1, True), (5, 2, 2, False))
"""(kernel, dilation, stride, relu) of every separable case checked."""
_checked: dict[str, float] = {}


def check_fused(device: torch.device | str) -> float:
    """The largest relative difference between a fused operator and its reference (outputs and every input
    gradient) on ``device``; computed once per device type and process."""
    device = torch.device(device)
    if device.type not in _checked:
        layouts = (torch.contiguous_format, torch.channels_last)
        _checked[device.type] = max(
            *(_mixed_sum_difference(device, layout, aux) for layout in layouts for aux in (False, True)),
            *(_depthwise_difference(device, layout, *case) for layout in layouts for case in DEPTHWISE_CASES),
            *(_batchnorm_sum_difference(device, layout) for layout in layouts if device.type == "cpu"),
            *(_batchnorm_act_difference(device, layout, activation) for layout in layouts
              for activation in ("relu", "relu6") if device.type == "cpu"),
            *(_separable_difference(device, layout, *case) for layout in layouts for case in SEPARABLE_CASES
              if device.type == "cpu"),
            *(_max_pool_difference(device, layout, stride) for layout in layouts for stride in (1, 2)))
    return _checked[device.type]


def _random(device: torch.device):
    generator = torch.Generator().manual_seed(0)
    return lambda *size: torch.randn(*size, generator=generator).to(device)


def _difference(results: list[list[torch.Tensor]]) -> float:
    scale = max(r.abs().max().item() for r in results[1])
    return max((a - b).abs().max().item() for a, b in zip(*results)) / scale


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
                          stride: int, relu: bool) -> float:
    tensor = _random(device)
    x = tensor(2, 21, 11, 9).contiguous(memory_format=layout)  # 21 channels: vector blocks and a scalar rest
    weight = tensor(21, 1, kernel, kernel)
    padding = dilation * (kernel - 1) // 2
    results = []
    # the reference in float64: cuDNN's float32 convolutions may round through TF32 (~1e-3 relative)
    for implementation, dtype in ((fused_depthwise_conv2d, torch.float32), (depthwise_conv2d, torch.float64)):
        inputs, w = x.detach().to(dtype).requires_grad_(), weight.detach().to(dtype).requires_grad_()
        out = implementation(inputs, w, stride, padding, dilation, relu)
        out.backward(torch.ones_like(out).cumsum(-1).sin())
        results.append([t.double() for t in (out.detach(), inputs.grad, w.grad)])
    return _difference(results)


def _separable_difference(device: torch.device, layout: torch.memory_format, kernel: int, dilation: int,
                          stride: int, relu: bool) -> float:
    tensor = _random(device)
    x = tensor(3, 21, 9, 8).contiguous(memory_format=layout)
    depthwise, pointwise = tensor(21, 1, kernel, kernel), tensor(10, 21, 1, 1)
    results = []
    for implementation, dtype in ((fused_separable_conv2d, torch.float32), (separable_conv2d, torch.float64)):
        leaves = [t.detach().to(dtype).requires_grad_() for t in (x, depthwise, pointwise)]
        out = implementation(*leaves, stride, dilation * (kernel - 1) // 2, dilation, relu)
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
    for implementation in (recomputing_max_pool2d, max_pool2d):
        inputs = x.detach().requires_grad_()
        out = implementation(inputs, 3, stride, 1)
        out.backward(torch.ones_like(out).cumsum(-1).sin())
        results.append([out.detach(), inputs.grad])
    return _difference(results)
