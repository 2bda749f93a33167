"""The dominant eigenvalue of the Hessian of the validation loss with respect to the architecture weights.

R-DARTS proposed it as an early sign of DARTS's collapse; the DARTS- paper (section 5.1, Figure 4, Table 9)
tracks it and argues that it is not a reliable indicator. :func:`hessian_eigenvalue` computes it by power
iteration on exact Hessian-vector products (double backward through the supernet), on a fixed set of validation
batches, and leaves the supernet as it found it: its batch-norm statistics, train/eval mode, kernels and
recomputation setting, and the global RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from dmc.kernels.select import REFERENCE


def hessian_eigenvalue(model, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], iterations: int = 20,
                       tolerance: float = 1e-3, seed: int = 0,
                       average: Callable[[Sequence[torch.Tensor]], None] = lambda tensors: None) -> float:
    """The eigenvalue of largest magnitude of the Hessian of the mean cross-entropy over ``batches`` (each
    ``(x, y)``, already on the model's device) with respect to every alpha of the supernet ``model``.

    The loss is the one the architecture step descends: the supernet in training mode (batch statistics). Power
    iteration from a seeded random direction stops after ``iterations`` products or when the Rayleigh quotient
    changes by at most ``tolerance`` (relative). The fused kernels have no double backward, so the products run
    through the reference kernels (same math), without edge recomputation.

    In a distributed run every process calls this on the same batches; ``average``
    (:meth:`dmc.distributed.Distributed.average_`) averages each product so all of them iterate in lockstep.
    """
    alphas = model.arch_parameters()
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    training, kernels, recompute = model.training, model.kernels, model.recompute_edges
    model.train()
    model.set_kernels(REFERENCE)
    model.set_recompute_edges(False)
    try:
        with torch.random.fork_rng(devices=[alphas[0].device] if alphas[0].is_cuda else []):
            generator = torch.Generator().manual_seed(seed)
            v = [torch.randn(a.shape, generator=generator, dtype=a.dtype).to(a.device) for a in alphas]
            v = _normalized(v)
            eigenvalue = 0.0
            for i in range(iterations):
                hv = _hessian_vector_product(model, alphas, batches, v)
                average(hv)
                previous, eigenvalue = eigenvalue, _dot(v, hv).item()
                v = _normalized(hv)
                if i > 0 and abs(eigenvalue - previous) <= tolerance * abs(eigenvalue):
                    break
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        model.set_kernels(kernels)
        model.set_recompute_edges(recompute)
        model.train(training)
    return eigenvalue


def _hessian_vector_product(model, alphas, batches, v) -> list[torch.Tensor]:
    """H v, accumulated batch by batch (one batch's graph in memory at a time)."""
    total = [torch.zeros_like(a) for a in alphas]
    for x, y in batches:
        loss = F.cross_entropy(model(x), y) / len(batches)
        grads = torch.autograd.grad(loss, alphas, create_graph=True)
        products = torch.autograd.grad(_dot(grads, v), alphas)
        total = [t + p for t, p in zip(total, products)]
    return total


def _normalized(vectors: list[torch.Tensor]) -> list[torch.Tensor]:
    norm = torch.sqrt(_dot(vectors, vectors))
    return [u / norm for u in vectors] if norm > 0 else vectors


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """The sum of ``(a[i] * b[i]).sum()`` in order, as the builtin ``sum`` adds them (whose start, 0, makes its
    type ``Tensor | int``); ``a`` is not empty."""
    total = (a[0] * b[0]).sum()
    for x, y in zip(a[1:], b[1:]):
        total = total + (x * y).sum()
    return total
