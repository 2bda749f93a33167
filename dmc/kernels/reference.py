"""Plain-PyTorch mixed-edge sum: the reference every other implementation is tested against."""

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
        out = out + beta * aux
    return out
