"""Plain-PyTorch mixed-edge sums: the oracle every other implementation is tested against.

:func:`mixed_sum` is the eager expression (``--kernels reference``); :func:`weighted_sum` and
:func:`weighted_sum_backward` are the same math in the form of the ``dmc::mixed_sum`` operator and its
backward (one weight per input, the auxiliary branch being just another input), with the output
layouts of the fused kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def mixed_sum(outputs: Sequence[torch.Tensor], weights: torch.Tensor, aux: torch.Tensor | None = None,
              beta: torch.Tensor | None = None) -> torch.Tensor:
    """``beta * aux + sum_k weights[k] * outputs[k]``; all outputs share one shape, weights is (K,)."""
    out = weights[0] * outputs[0]
    for k in range(1, len(outputs)):
        out = out + weights[k] * outputs[k]
    if aux is not None:
        assert beta is not None, "an auxiliary output needs its beta"
        out = out + beta * aux
    return out


def weighted_sum(ys: Sequence[torch.Tensor], w: torch.Tensor) -> torch.Tensor:
    """``sum_k w[k] * ys[k]`` into a tensor laid out like ``ys[0]`` (dense layouts are kept)."""
    out = torch.mul(ys[0], w[0].to(ys[0].dtype), out=torch.empty_like(ys[0]))
    for k in range(1, len(ys)):
        out.addcmul_(ys[k], w[k].to(ys[0].dtype))
    return out


def weighted_sum_backward(grad: torch.Tensor, ys: Sequence[torch.Tensor],
                          w: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Gradients of :func:`weighted_sum`: ``w[k] * grad`` for every input and ``<grad, ys[k]>`` for w."""
    grad_ys = [torch.mul(grad, w[k].to(grad.dtype), out=torch.empty_like(ys[0])) for k in range(len(ys))]
    grad_w = torch.stack([(grad.to(torch.float64) * y.to(torch.float64)).sum() for y in ys]).to(w.dtype)
    return grad_ys, grad_w
