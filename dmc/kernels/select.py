"""Choosing the supernet's kernels for a device: ``auto``, ``fused`` or ``reference``."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch

from dmc.errors import SettingError
from dmc.kernels import native
from dmc.kernels.batchnorm_act import BatchNormAct, fused_batchnorm_act
from dmc.kernels.batchnorm_sum import BatchNormMixedSum, fused_batchnorm_mixed_sum
from dmc.kernels.depthwise import DepthwiseConv, fused_depthwise_conv2d
from dmc.kernels.max_pool import MaxPoolFunction, recomputing_max_pool2d
from dmc.kernels.native import KernelBuildError
from dmc.kernels.operator import fused_mixed_sum
from dmc.kernels.reference import mixed_sum
from dmc.kernels.self_check import TOLERANCE, check_fused
from dmc.kernels.separable import SeparableConv, fused_separable_conv2d

KERNEL_CHOICES = ("auto", "fused", "reference")


class MixedSum(Protocol):
    def __call__(self, outputs: list[torch.Tensor], weights: torch.Tensor, aux: torch.Tensor | None = None,
                 beta: torch.Tensor | None = None) -> torch.Tensor: ...


class Kernels(NamedTuple):
    """One implementation per hot spot. ``depthwise`` None: the ops' own eager ``ReLU -> Conv2d`` layers;
    ``batchnorm_mixed_sum`` None: the candidates' own batch norms, then ``mixed_sum``; ``max_pool`` None: PyTorch's
    max pooling, which stores indices for its backward; ``batchnorm_act`` None: the inverted residuals' own
    ``BN -> ReLU6`` layers; ``separable`` None: a separable or dilated conv's pointwise conv after ``depthwise``
    (storing the depthwise output for its weight gradient), else the two in one op that stores neither."""

    name: str
    """``reference`` or ``fused``: what run folders record."""
    mixed_sum: MixedSum
    depthwise: DepthwiseConv | None
    batchnorm_mixed_sum: BatchNormMixedSum | None = None
    max_pool: MaxPoolFunction | None = None
    batchnorm_act: BatchNormAct | None = None
    separable: SeparableConv | None = None


REFERENCE = Kernels("reference", mixed_sum, None)
FUSED = Kernels("fused", fused_mixed_sum, fused_depthwise_conv2d, fused_batchnorm_mixed_sum, recomputing_max_pool2d,
                fused_batchnorm_act, fused_separable_conv2d)
FUSED_CUDA = Kernels("fused", fused_mixed_sum, None, None, recomputing_max_pool2d)
"""On CUDA the depthwise convolutions stay with cuDNN: on an H200 our CUDA depthwise kernel was slower than
cuDNN in 44 of the 48 search shapes measured (benchmarks/RESULTS.md); the fused mixed sum was 1.3-2x faster.
The batch-norm-folding sum and the batch norm + activation have no CUDA kernels; the index-free max pool runs its
plain-PyTorch implementation there (its compiled kernels are CPU only)."""


def fused_kernels(device: torch.device | str) -> Kernels:
    """The fused kernels a search uses on ``device``: those that measured faster or leaner than the eager path
    there."""
    return FUSED_CUDA if torch.device(device).type == "cuda" else FUSED


def select_kernels(kind: str, device: torch.device | str,
                   on_status: Callable[[str], None] | None = None) -> Kernels:
    """``fused`` compiles the kernels for ``device`` (first use), checks them against the reference on that device
    (:func:`check_fused`) and fails with :class:`KernelBuildError` if they cannot be built or differ; ``auto`` falls
    back to ``reference`` then, telling ``on_status`` why."""
    if kind not in KERNEL_CHOICES:
        raise SettingError(f"{{kernels}} must be one of {', '.join(KERNEL_CHOICES)}, got {kind!r}")
    if kind == "reference":
        return REFERENCE
    device = torch.device(device)
    try:
        native.load(device.type, on_build=on_status)
        error = check_fused(device)
        if not error <= TOLERANCE:  # NaN fails too
            raise KernelBuildError(f"the fused kernels differ from the reference on {device.type} by "
                                   f"{error:.1e} (relative; at most {TOLERANCE:.0e} allowed)",
                                   "use {kernels} reference, and report this with `dmc doctor`'s output")
    except KernelBuildError as exc:
        if kind == "fused":
            raise
        if on_status is not None:
            on_status(f"using the reference kernels: {exc.message}")
        return REFERENCE
    return fused_kernels(device)
