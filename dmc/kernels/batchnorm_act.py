"""The ``dmc::batchnorm_act`` operator: a training-mode ``BatchNorm2d(affine=False)`` and the ReLU or ReLU6 after
it, as one opaque, differentiable op.

In a chain-space search every candidate of a mixed layer is an inverted residual whose 1x1 expansion and depthwise
conv each end with ``BN -> ReLU6`` on the widest tensors of the network. Eagerly, the batch norm writes its output,
the activation reads it and writes its own, and each keeps a tensor for its backward. This operator makes one pass
for the batch statistics and one that writes the activation's output, and keeps only its input: the backward
recomputes the normalised values (and from them the activation's mask) in its two passes. DARTS's separable convs
use it too, for the batch norm between their halves and the second half's ReLU.

Registered with ``torch.library`` like ``dmc::batchnorm_mixed_sum`` (:mod:`dmc.kernels.batchnorm_sum`): a
plain-PyTorch implementation for every device, which the compiled CPU kernel (``csrc/batchnorm_act_cpu.cpp``)
overrides once loaded; a fake kernel for ``torch.compile``; an autograd formula through
``dmc::batchnorm_act_backward``. No CUDA kernel: on a GPU the search keeps the eager layers
(:data:`dmc.kernels.select.FUSED_CUDA`).
"""

from __future__ import annotations

from typing import Protocol, TypeGuard

import torch
import torch.nn.functional as F
from torch import nn

from dmc.kernels import native
from dmc.kernels.layout import layout_of
from dmc.kernels.running_stats import update_running_stats

ACTIVATIONS = {"relu": F.relu, "relu6": F.relu6}
"""The activations this operator folds in, by the name its schema takes."""
MODULES = {nn.ReLU: "relu", nn.ReLU6: "relu6"}

torch.library.define("dmc::batchnorm_act", "(Tensor z, float eps, str activation) -> (Tensor, Tensor, Tensor)")
torch.library.define("dmc::batchnorm_act_backward",
                     "(Tensor grad, Tensor z, Tensor mean, Tensor var, float eps, str activation) -> Tensor")


class BatchNormAct(Protocol):
    def __call__(self, z: torch.Tensor, norm: nn.BatchNorm2d, activation: str) -> torch.Tensor: ...


def activation_name(module: nn.Module) -> str | None:
    """The name :class:`BatchNormAct` takes for an activation module (exactly ReLU or ReLU6), else None."""
    return MODULES.get(type(module))


def foldable(norm: nn.Module) -> TypeGuard[nn.BatchNorm2d]:
    """Whether :func:`fused_batchnorm_act` can stand in for ``norm``: a training-mode ``BatchNorm2d`` without affine
    parameters (not SyncBatchNorm: its statistics are global)."""
    return type(norm) is nn.BatchNorm2d and not norm.affine and norm.training


def batchnorm_act(z: torch.Tensor, norm: nn.BatchNorm2d, activation: str) -> torch.Tensor:
    """The eager reference: ``act(norm(z))``."""
    return ACTIVATIONS[activation](norm(z))


def fused_batchnorm_act(z: torch.Tensor, norm: nn.BatchNorm2d, activation: str) -> torch.Tensor:
    """:func:`batchnorm_act` through ``dmc::batchnorm_act``, for a training-mode batch norm without affine
    parameters (:func:`foldable`); its running statistics are updated as ``BatchNorm2d`` updates them.

    The first call on CPU tensors loads the fused kernels (compiling them at their first use on the machine) or
    raises :class:`~dmc.kernels.native.KernelBuildError`; so does a call on another device, which has no kernel for
    this operator: it never silently runs its plain-PyTorch fallback."""
    if z.device.type != "cpu":
        raise native.KernelBuildError(f"dmc::batchnorm_act has a CPU kernel only, got {z.device.type} tensors",
                                      "use dmc.kernels.batchnorm_act (the eager layers) there")
    native.load_for(z)
    if not foldable(norm):
        raise ValueError("dmc::batchnorm_act folds in a training-mode BatchNorm2d without affine parameters")
    out, mean, var = torch.ops.dmc.batchnorm_act(z, norm.eps, activation)
    update_running_stats([norm], mean[None], var[None], z.numel() // z.shape[1])
    return out


def _check(z: torch.Tensor, activation: str) -> None:
    torch._check(z.dim() == 4, lambda: "dmc::batchnorm_act: the input must be (N, C, H, W)")
    torch._check(activation in ACTIVATIONS, lambda: f"dmc::batchnorm_act: activation must be relu or relu6, "
                                                    f"got {activation!r}")


def _per_channel(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(1, -1, 1, 1)


@torch.library.impl("dmc::batchnorm_act", "CompositeExplicitAutograd")
def _reference(z, eps, activation):
    _check(z, activation)
    mean, var = z.mean((0, 2, 3)), z.var((0, 2, 3), unbiased=False)
    out = ACTIVATIONS[activation]((z - _per_channel(mean)) * _per_channel((var + eps).rsqrt()))
    return out.contiguous(memory_format=layout_of(z)), mean, var


@torch.library.impl("dmc::batchnorm_act_backward", "CompositeExplicitAutograd")
def _backward_reference(grad, z, mean, var, eps, activation):
    _check(z, activation)
    n = z.numel() // z.shape[1]
    rstd = _per_channel((var + eps).rsqrt())
    xhat = (z - _per_channel(mean)) * rstd
    inside = xhat > 0 if activation == "relu" else (xhat > 0) & (xhat < 6)
    g = grad * inside
    dz = rstd * (g - _per_channel(g.sum((0, 2, 3)) / n) - xhat * _per_channel((g * xhat).sum((0, 2, 3)) / n))
    return dz.contiguous(memory_format=layout_of(z))


@torch.library.register_fake("dmc::batchnorm_act")
def _fake(z, eps, activation):
    _check(z, activation)
    stats = z.new_empty(z.shape[1])
    return z.new_empty(z.shape).contiguous(memory_format=layout_of(z)), stats, stats.clone()


@torch.library.register_fake("dmc::batchnorm_act_backward")
def _backward_fake(grad, z, mean, var, eps, activation):
    _check(z, activation)
    return z.new_empty(z.shape).contiguous(memory_format=layout_of(z))


def _setup_context(ctx, inputs, output) -> None:
    z, ctx.eps, ctx.activation = inputs
    _, mean, var = output
    ctx.save_for_backward(z, mean, var)
    ctx.mark_non_differentiable(mean, var)


def _backward(ctx, grad, _grad_mean, _grad_var):
    z, mean, var = ctx.saved_tensors
    return torch.ops.dmc.batchnorm_act_backward(grad, z, mean, var, ctx.eps, ctx.activation), None, None


torch.library.register_autograd("dmc::batchnorm_act", _backward, setup_context=_setup_context)
