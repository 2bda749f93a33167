"""Batch normalisation over the global batch of a distributed run, on CPUs (gloo) and GPUs (NCCL) alike.

torch's ``nn.SyncBatchNorm`` refuses CPU tensors and has no double backward (the Hessian tracking of a search
differentiates twice), so dmc normalises with plain differentiable tensor operations around one all-reduce.
"""

from __future__ import annotations

from typing import TypedDict

import torch
import torch.distributed as dist
from torch import nn


class _SumOverProcesses(torch.autograd.Function):
    """``x`` summed over the processes; differentiable any number of times (its backward is itself)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # every process's loss depends on the sum: d(sum of losses)/dx is the sum of the local gradients
        return _SumOverProcesses.apply(grad)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training-mode statistics are those of the batch over all processes.

    Each process contributes its count, mean and sum of squared deviations; they are combined exactly
    (Chan et al.'s pairwise formula), so the result equals a single process's BatchNorm on the whole batch up
    to rounding. Same parameters, buffers and state-dict keys as ``nn.BatchNorm2d``; evaluation, and any use
    outside a distributed run, is ``nn.BatchNorm2d``'s own.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and _distributed()):
            return super().forward(x)
        self._check_input_dim(x)
        world, rank, channels = dist.get_world_size(), dist.get_rank(), x.shape[1]
        stats_x = x.to(torch.promote_types(x.dtype, torch.float32))  # half precision: statistics in float
        mean = stats_x.mean((0, 2, 3))
        m2 = (stats_x - mean.view(1, -1, 1, 1)).square().sum((0, 2, 3))
        count = x.numel() // channels
        local = torch.cat([mean.new_full((1,), float(count)), mean, m2])
        table = torch.zeros(world, local.numel(), dtype=local.dtype, device=local.device)
        table = _SumOverProcesses.apply(table.index_copy(0, torch.tensor([rank], device=local.device), local[None]))
        counts, means, m2s = table[:, :1], table[:, 1: 1 + channels], table[:, 1 + channels:]
        total = counts.sum()
        global_mean = (counts * means).sum(0) / total
        global_m2 = (m2s + counts * (means - global_mean).square()).sum(0)
        var = global_m2 / total
        if self.track_running_stats:
            self._update_running_stats(global_mean.detach(), global_m2.detach(), total.detach())
        scale = torch.rsqrt(var + self.eps)
        shift = -global_mean * scale
        if self.affine:
            scale, shift = scale * self.weight, shift * self.weight + self.bias
        return x * scale.to(x.dtype).view(1, -1, 1, 1) + shift.to(x.dtype).view(1, -1, 1, 1)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, m2: torch.Tensor, total: torch.Tensor) -> None:
        tracked, running_mean, running_var = self.num_batches_tracked, self.running_mean, self.running_var
        assert tracked is not None and running_mean is not None and running_var is not None, \
            "called only with track_running_stats, which registers the three buffers"
        tracked.add_(1)
        factor = 1.0 / tracked.item() if self.momentum is None else self.momentum
        unbiased = m2 / (total - 1).clamp_min(1)
        running_mean.lerp_(mean.to(running_mean.dtype), factor)
        running_var.lerp_(unbiased.to(running_var.dtype), factor)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replaces every ``nn.BatchNorm2d`` in ``module`` by a :class:`SyncBatchNorm2d` with the same state, device and
    dtype, in place (``module`` itself when it is one is returned converted)."""
    if type(module) is nn.BatchNorm2d:
        synced = SyncBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                                 module.track_running_stats, **_placement_of(module))
        synced.load_state_dict(module.state_dict())
        if module.affine:
            synced.weight.requires_grad_(module.weight.requires_grad)
            synced.bias.requires_grad_(module.bias.requires_grad)
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        converted = convert_sync_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)
    return module


class _Placement(TypedDict, total=False):
    device: torch.device
    dtype: torch.dtype


def _placement_of(module: nn.Module) -> _Placement:
    """The device and floating-point dtype of ``module``'s tensors (none: the defaults)."""
    tensors = [t for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()]
    return {"device": tensors[0].device, "dtype": tensors[0].dtype} if tensors else {}
