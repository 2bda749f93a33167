"""``torch.compile`` for search: each mixed edge compiled on its own, Triton-free where Triton is missing.

Compiling the whole supernet is impractical (it did not finish in 35 minutes on 2 cores for the S0
supernet); compiling each mixed edge separately takes about two minutes once, because edges of one
shape share their compiled code. Shapes are static (``dynamic=False``), and ``fullgraph=True`` makes any
graph break an error: the ``dmc::mixed_sum`` operator is one opaque node.
"""

from __future__ import annotations

import torch

from dmc.supernet.network import Supernet

EDGE_VARIANTS = 64
"""Compiled variants allowed per edge code: (width, stride, resolution, aux on/off) combinations."""


def compile_backend(device: torch.device | str) -> str:
    """inductor (C++ on CPU, Triton on CUDA); on CUDA without Triton the Triton-free ``aot_eager``."""
    if torch.device(device).type == "cuda":
        from torch.utils._triton import has_triton

        return "inductor" if has_triton() else "aot_eager"
    return "inductor"


def compile_edges(model: Supernet, backend: str) -> None:
    """Compiles every mixed edge of ``model`` in place (its state dict keys do not change)."""
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, EDGE_VARIANTS)
    for edge in model.mixed_edges():
        edge.compile(backend=backend, dynamic=False, fullgraph=True)
