"""``dmc::update_running_stats``: the running statistics of the batch norms a fused op folds in, moved as
``BatchNorm2d``'s training forward moves them, in one call.

``dmc::batchnorm_mixed_sum`` and ``dmc::batchnorm_act`` return the batch's per-channel mean and biased variance;
each norm's counter goes up by one and its running mean and variance move towards the batch's mean and unbiased
variance by its momentum (or, with ``momentum=None``, by ``1 / batches``: the cumulative average). Eagerly that was
five or more small ops per fused call, more time than the fused kernel on a search step's small tensors; the CPU
kernel (``csrc/running_stats_cpu.cpp``) does it in one. A plain-PyTorch implementation serves every other device, a
fake one ``torch.compile``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

torch.library.define("dmc::update_running_stats",
                     "(Tensor(a!)[] running_means, Tensor(b!)[] running_vars, Tensor(c!)[] counts, Tensor mean, "
                     "Tensor var, int count, float[] factors) -> ()")


def update_running_stats(norms: Sequence[nn.BatchNorm2d], mean: torch.Tensor, var: torch.Tensor,
                         count: int) -> None:
    """What ``BatchNorm2d.forward`` does to the buffers of ``norms`` in training mode, given the batch's biased
    moments ``mean`` and ``var`` ((len(norms), C), over ``count`` values per channel). Norms that track no running
    statistics are left alone, as ``BatchNorm2d`` leaves them."""
    rows = [k for k, norm in enumerate(norms) if norm.track_running_stats and norm.running_mean is not None]
    if not rows:
        return
    tracked = norms
    if len(rows) < len(norms):
        tracked = [norms[k] for k in rows]
        index = torch.tensor(rows, device=mean.device)
        mean, var = mean.index_select(0, index), var.index_select(0, index)
    factors = [_factor(norm) for norm in tracked]
    torch.ops.dmc.update_running_stats([norm.running_mean for norm in tracked], [norm.running_var for norm in tracked],
                                       [norm.num_batches_tracked for norm in tracked], mean, var, count, factors)


def _factor(norm: nn.BatchNorm2d) -> float:
    """``BatchNorm2d``'s factor for the running statistics: its momentum, or ``1 / batches`` without one."""
    if norm.momentum is not None:
        return norm.momentum
    assert norm.num_batches_tracked is not None, "a norm that tracks running statistics counts its batches"
    return 1.0 / (float(norm.num_batches_tracked) + 1.0)


def plain_update_running_stats(running_means, running_vars, counts, mean, var, count, factors) -> None:
    """``dmc::update_running_stats`` in plain PyTorch (every device without the CPU kernel)."""
    unbiased = var * (count / max(count - 1, 1))
    for running_mean, running_var, batches, m, v, factor in zip(running_means, running_vars, counts, mean, unbiased,
                                                                factors, strict=True):
        batches.add_(1)
        running_mean.copy_(factor * m.to(running_mean.dtype) + (1 - factor) * running_mean)
        running_var.copy_(factor * v.to(running_var.dtype) + (1 - factor) * running_var)


torch.library.impl("dmc::update_running_stats", "CompositeExplicitAutograd")(plain_update_running_stats)


@torch.library.register_fake("dmc::update_running_stats")
def _fake(running_means, running_vars, counts, mean, var, count, factors):
    return None
