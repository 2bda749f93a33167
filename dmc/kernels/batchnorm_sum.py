"""The ``dmc::batchnorm_mixed_sum`` operator: a mixed edge's weighted sum with its candidates' final batch norms
folded in.

In the search, most candidates of a DARTS edge end with a training-mode ``BatchNorm2d(affine=False)`` (separable,
dilated and plain convs, the factorized reduce, and the batch norm DARTS puts after pooling). Eagerly, each batch
norm writes its normalised output, the weighted sum stores it for the weight gradients, and each backward reads it
again. This operator takes the candidates' outputs *before* their batch norm (``zs``) and the other candidates'
outputs (``ys``), and computes

    out = sum_k w_k * (z_k - mean_k) / sqrt(var_k + eps) + sum_j w_j * y_j

with per-channel batch statistics, returning them too (for the running statistics). The normalised outputs are
never written or stored; the backward recomputes what it needs from ``zs`` and the statistics in two passes.

Registered with ``torch.library`` like ``dmc::mixed_sum`` (:mod:`dmc.kernels.operator`): a plain-PyTorch
implementation for every device, which the compiled CPU kernel overrides once loaded; a fake kernel for
``torch.compile``; an autograd formula through ``dmc::batchnorm_mixed_sum_backward``. No CUDA kernel: on a GPU the
search keeps the eager batch norms (:data:`dmc.kernels.select.FUSED_CUDA`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from dmc.kernels import native
from dmc.kernels.layout import layout_of
from dmc.kernels.reference import mixed_sum
from dmc.kernels.running_stats import update_running_stats

torch.library.define("dmc::batchnorm_mixed_sum",
                     "(Tensor[] zs, Tensor[] ys, Tensor w, float eps) -> (Tensor, Tensor, Tensor)")
torch.library.define("dmc::batchnorm_mixed_sum_backward",
                     "(Tensor grad, Tensor[] zs, Tensor[] ys, Tensor w, Tensor mean, Tensor var, float eps) "
                     "-> (Tensor[], Tensor[], Tensor)")


class BatchNormMixedSum(Protocol):
    def __call__(self, zs: Sequence[torch.Tensor], norms: Sequence[nn.BatchNorm2d], ys: Sequence[torch.Tensor],
                 weights: torch.Tensor) -> torch.Tensor: ...


def batchnorm_mixed_sum(zs: Sequence[torch.Tensor], norms: Sequence[nn.BatchNorm2d], ys: Sequence[torch.Tensor],
                        weights: torch.Tensor) -> torch.Tensor:
    """The eager reference: ``sum_k weights[k] * norms[k](zs[k]) + sum_j weights[len(zs) + j] * ys[j]``."""
    return mixed_sum([norm(z) for norm, z in zip(norms, zs)] + list(ys), weights)


def fused_batchnorm_mixed_sum(zs: Sequence[torch.Tensor], norms: Sequence[nn.BatchNorm2d],
                              ys: Sequence[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """:func:`batchnorm_mixed_sum` through ``dmc::batchnorm_mixed_sum``, for training-mode batch norms without
    affine parameters; their running statistics are updated as ``BatchNorm2d`` updates them.

    The first call on CPU tensors loads the fused kernels (compiling them at their first use on the machine) or
    raises :class:`~dmc.kernels.native.KernelBuildError` saying why they cannot be built; so does a call on another
    device, which has no kernel for this operator: it never silently runs its plain-PyTorch fallback."""
    if zs[0].device.type != "cpu":
        raise native.KernelBuildError(f"dmc::batchnorm_mixed_sum has a CPU kernel only, got {zs[0].device.type} "
                                      "tensors", "use dmc.kernels.batchnorm_mixed_sum (the eager batch norms) there")
    native.load_for(zs[0])
    eps = norms[0].eps
    if any(norm.eps != eps or norm.affine or not norm.training for norm in norms):
        raise ValueError("dmc::batchnorm_mixed_sum folds in training-mode batch norms without affine parameters "
                         "and with one eps")
    out, mean, var = torch.ops.dmc.batchnorm_mixed_sum(list(zs), list(ys), weights, eps)
    update_running_stats(norms, mean, var, zs[0].numel() // zs[0].shape[1])
    return out


def _check(zs, ys, w) -> None:
    torch._check(len(zs) >= 1, lambda: "dmc::batchnorm_mixed_sum needs at least one input to normalise")
    torch._check(w.dim() == 1 and w.shape[0] == len(zs) + len(ys),
                 lambda: f"expected {len(zs) + len(ys)} weights, got {tuple(w.shape)}")
    for t in [*zs, *ys]:
        torch._check(t.shape == zs[0].shape, lambda: "dmc::batchnorm_mixed_sum inputs differ in shape")
        torch._check(t.dtype == zs[0].dtype, lambda: "dmc::batchnorm_mixed_sum inputs differ in dtype")
    torch._check(zs[0].dim() == 4, lambda: "dmc::batchnorm_mixed_sum inputs must be (N, C, H, W)")


def _per_channel(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(1, -1, 1, 1)


@torch.library.impl("dmc::batchnorm_mixed_sum", "CompositeExplicitAutograd")
def _reference(zs, ys, w, eps):
    _check(zs, ys, w)
    mean = torch.stack([z.mean((0, 2, 3)) for z in zs])
    var = torch.stack([z.var((0, 2, 3), unbiased=False) for z in zs])
    out = torch.zeros_like(zs[0])
    for k, z in enumerate(zs):
        out = out + w[k] * (z - _per_channel(mean[k])) * _per_channel((var[k] + eps).rsqrt())
    for j, y in enumerate(ys):
        out = out + w[len(zs) + j] * y
    return out.contiguous(memory_format=layout_of(zs[0])), mean, var


@torch.library.impl("dmc::batchnorm_mixed_sum_backward", "CompositeExplicitAutograd")
def _backward_reference(grad, zs, ys, w, mean, var, eps):
    _check(zs, ys, w)
    n = grad.numel() // grad.shape[1]
    g_sum = grad.sum((0, 2, 3))
    grad_zs, grad_w = [], []
    for k, z in enumerate(zs):
        rstd = (var[k] + eps).rsqrt()
        xhat = (z - _per_channel(mean[k])) * _per_channel(rstd)
        a = (grad * xhat).sum((0, 2, 3))
        grad_w.append(a.sum())
        dz = w[k] * _per_channel(rstd) * (grad - _per_channel(g_sum / n) - xhat * _per_channel(a / n))
        grad_zs.append(dz.contiguous(memory_format=layout_of(zs[0])))
    grad_ys = [(w[len(zs) + j] * grad).contiguous(memory_format=layout_of(zs[0])) for j in range(len(ys))]
    grad_w += [(grad * y).sum() for y in ys]
    return grad_zs, grad_ys, torch.stack(grad_w).to(w.dtype)


@torch.library.register_fake("dmc::batchnorm_mixed_sum")
def _fake(zs, ys, w, eps):
    _check(zs, ys, w)
    stats = zs[0].new_empty((len(zs), zs[0].shape[1]))
    return torch.empty_like(zs[0]), stats, stats.clone()


@torch.library.register_fake("dmc::batchnorm_mixed_sum_backward")
def _backward_fake(grad, zs, ys, w, mean, var, eps):
    _check(zs, ys, w)
    return [torch.empty_like(zs[0]) for _ in zs], [torch.empty_like(zs[0]) for _ in ys], torch.empty_like(w)


def _setup_context(ctx, inputs, output) -> None:
    zs, ys, w, eps = inputs
    _, mean, var = output
    ctx.counts, ctx.eps = (len(zs), len(ys)), eps
    ctx.save_for_backward(*zs, *ys, w, mean, var)
    ctx.mark_non_differentiable(mean, var)


def _backward(ctx, grad, _grad_mean, _grad_var):
    k, j = ctx.counts
    saved = ctx.saved_tensors
    zs, ys, (w, mean, var) = list(saved[:k]), list(saved[k:k + j]), saved[k + j:]
    grad_zs, grad_ys, grad_w = torch.ops.dmc.batchnorm_mixed_sum_backward(grad, zs, ys, w, mean, var, ctx.eps)
    return list(grad_zs), list(grad_ys), grad_w, None


torch.library.register_autograd("dmc::batchnorm_mixed_sum", _backward, setup_context=_setup_context)
