"""The memory format the kernels give their results, so that fake kernels and layout-keeping code agree."""

from __future__ import annotations

import torch


def layout_of(t: torch.Tensor) -> torch.memory_format:
    """Channels-last iff ``t`` is channels-last and not also contiguous (``layout_of`` in csrc/common.h)."""
    channels_last = t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


class _GradientInLayout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.layout = layout_of(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=ctx.layout)


def gradient_in_layout(x: torch.Tensor) -> torch.Tensor:
    """``x``, whose gradient is handed back in ``x``'s memory format.

    Global average pooling returns a contiguous gradient whatever its input's layout. Placed before the pool (in
    training: :meth:`dmc.network.MacroNetwork.logits`), this turns it back once, so that the backward of a
    channels-last network does not run every op after it on mixed layouts, PyTorch's slow paths."""
    return _GradientInLayout.apply(x) if x.requires_grad else x


def in_strides_of(weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """A weight's gradient in the weight's own strides: DDP's gradient buckets expect them, and a [C, 1, k, k] or
    [C, C', 1, 1] weight has two layouts (``in_strides_of`` in csrc/autograd_cpu.cpp)."""
    return grad if grad.stride() == weight.stride() else torch.empty_like(weight).copy_(grad)
