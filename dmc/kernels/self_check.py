"""A parity check the fused kernels pass on a device before a search uses them.

Kernels that build are not yet kernels that compute the right thing on this device (the CUDA kernels had never
run on a GPU when this was written): :func:`check_fused` runs ``dmc::mixed_sum`` forward and backward on small
contiguous and channels-last inputs, with and without the auxiliary branch, against the eager reference, once
per device type and process.
"""

from __future__ import annotations

import torch

from dmc.kernels.operator import fused_mixed_sum
from dmc.kernels.reference import mixed_sum

TOLERANCE = 1e-5
"""Largest absolute difference allowed, relative to the largest reference value (float32 rounding is ~1e-7)."""
_checked: dict[str, float] = {}


def check_fused(device: torch.device | str) -> float:
    """The largest relative difference between the fused and the reference mixed sum (outputs and the gradients
    of inputs and weights) on ``device``; computed once per device type and process."""
    device = torch.device(device)
    if device.type not in _checked:
        _checked[device.type] = max(_difference(device, channels_last, aux) for channels_last in (False, True)
                                    for aux in (False, True))
    return _checked[device.type]


def _difference(device: torch.device, channels_last: bool, aux: bool) -> float:
    generator = torch.Generator().manual_seed(0)
    shape = (3, 5, 7, 6)  # odd sizes: no kernel can rely on vector-width multiples
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def tensor(*size: int) -> torch.Tensor:
        return torch.randn(*size, generator=generator).to(device)

    ys = [tensor(*shape).contiguous(memory_format=memory_format) for _ in range(3)]
    weights, beta = tensor(3).softmax(0), tensor(1).reshape(())
    branch = tensor(*shape).contiguous(memory_format=memory_format) if aux else None
    grad = tensor(*shape)
    results = []
    for implementation in (fused_mixed_sum, mixed_sum):
        inputs = [y.detach().requires_grad_() for y in ys]
        w = weights.detach().requires_grad_()
        out = implementation(inputs, w, branch, beta if aux else None)
        out.backward(grad)
        results.append([out.detach(), *(x.grad for x in inputs), w.grad])
    scale = max(r.abs().max().item() for r in results[1])
    return max((a - b).abs().max().item() for a, b in zip(*results)) / scale
