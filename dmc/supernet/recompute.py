"""Recomputing mixed edges in backward: each edge keeps only its input, not its candidates' activations."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def recomputed(edge: nn.Module, *args: torch.Tensor | None) -> torch.Tensor:
    """``edge(*args)``, its activations recomputed in backward (non-reentrant checkpoint)."""
    return checkpoint(edge, *args, use_reentrant=False,
                      context_fn=lambda: (contextlib.nullcontext(), _buffers_kept(edge)))


@contextlib.contextmanager
def _buffers_kept(module: nn.Module):
    """Runs the recomputation of ``module`` without a trace: batch-norm statistics stay as the first
    forward left them."""
    saved = [b.clone() for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            torch._foreach_copy_(list(module.buffers()), saved)
