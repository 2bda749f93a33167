"""The ``dmc::mixed_sum`` operator: ``out = sum_k w[k] * ys[k]`` as one opaque, differentiable op.

Registered with ``torch.library``: a plain-PyTorch implementation for every device
(``CompositeExplicitAutograd``), which the fused CPU and CUDA kernels override once loaded
(:mod:`dmc.kernels.native`); a fake kernel, so ``torch.compile`` and ``torch.export`` trace it as one
node; and an autograd formula whose backward is the single op ``dmc::mixed_sum_backward``, which reads
the gradient once and returns every ``w[k] * grad`` and every ``<grad, ys[k]>``.

Every dmc operator registers its autograd formula from Python, for every device. Once the CPU kernels are loaded,
the same formulas in C++ (``csrc/autograd_cpu.cpp``, registered for ``AutogradCPU``, which the dispatcher prefers)
take over for CPU tensors: a Python autograd node per call was about a tenth of a CPU search step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dmc.kernels import native, reference

torch.library.define("dmc::mixed_sum", "(Tensor[] ys, Tensor w) -> Tensor")
torch.library.define("dmc::mixed_sum_backward", "(Tensor grad, Tensor[] ys, Tensor w) -> (Tensor[], Tensor)")


def _check(ys: Sequence[torch.Tensor], w: torch.Tensor) -> None:
    torch._check(len(ys) >= 1, lambda: "dmc::mixed_sum needs at least one input")
    torch._check(w.dim() == 1 and w.shape[0] == len(ys), lambda: f"expected {len(ys)} weights, got {tuple(w.shape)}")
    for y in ys:
        torch._check(y.shape == ys[0].shape, lambda: "dmc::mixed_sum inputs differ in shape")
        torch._check(y.dtype == ys[0].dtype, lambda: "dmc::mixed_sum inputs differ in dtype")


@torch.library.impl("dmc::mixed_sum", "CompositeExplicitAutograd")
def _mixed_sum_reference(ys, w):
    _check(ys, w)
    return reference.weighted_sum(ys, w)


@torch.library.impl("dmc::mixed_sum_backward", "CompositeExplicitAutograd")
def _mixed_sum_backward_reference(grad, ys, w):
    _check(ys, w)
    return reference.weighted_sum_backward(grad, ys, w)


@torch.library.register_fake("dmc::mixed_sum")
def _mixed_sum_fake(ys, w):
    _check(ys, w)
    return torch.empty_like(ys[0])


@torch.library.register_fake("dmc::mixed_sum_backward")
def _mixed_sum_backward_fake(grad, ys, w):
    _check(ys, w)
    return [torch.empty_like(ys[0]) for _ in ys], torch.empty_like(w)


def _setup_context(ctx, inputs, output) -> None:
    ys, w = inputs
    ctx.save_for_backward(*ys, w)


def _backward(ctx, grad):
    *ys, w = ctx.saved_tensors
    grad_ys, grad_w = torch.ops.dmc.mixed_sum_backward(grad, ys, w)
    return list(grad_ys), grad_w


torch.library.register_autograd("dmc::mixed_sum", _backward, setup_context=_setup_context)


def fused_mixed_sum(outputs: Sequence[torch.Tensor], weights: torch.Tensor, aux: torch.Tensor | None = None,
                    beta: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`dmc.kernels.reference.mixed_sum` through ``dmc::mixed_sum``: the auxiliary branch is
    one more input, weighted by ``beta``.

    The first call on CPU or CUDA tensors loads the fused kernels of that device (compiling them at their
    first use on the machine) or raises :class:`~dmc.kernels.native.KernelBuildError` saying why they
    cannot be built: the operator never silently runs its plain-PyTorch fallback instead."""
    native.load_for(outputs[0])
    if aux is None:
        return torch.ops.dmc.mixed_sum(list(outputs), weights)
    assert beta is not None, "an auxiliary output needs its beta"
    w = torch.cat([weights, beta.reshape(1).to(weights.dtype)])
    return torch.ops.dmc.mixed_sum([*outputs, aux], w)
