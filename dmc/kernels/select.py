"""Choosing the supernet's kernels for a device: ``auto``, ``fused`` or ``reference``."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch

from dmc.kernels import native
from dmc.kernels.depthwise import DepthwiseConv, fused_depthwise_conv2d
from dmc.kernels.native import KernelBuildError
from dmc.kernels.operator import fused_mixed_sum
from dmc.kernels.reference import mixed_sum
from dmc.kernels.self_check import TOLERANCE, check_fused

KERNEL_CHOICES = ("auto", "fused", "reference")


class MixedSum(Protocol):
    def __call__(self, outputs: list[torch.Tensor], weights: torch.Tensor, aux: torch.Tensor | None = None,
                 beta: torch.Tensor | None = None) -> torch.Tensor: ...


class Kernels(NamedTuple):
    """One implementation per hot spot. ``depthwise`` None: the ops' own eager ``ReLU -> Conv2d`` layers."""

    kind: str
    mixed_sum: MixedSum
    depthwise: DepthwiseConv | None


REFERENCE = Kernels("reference", mixed_sum, None)
FUSED = Kernels("fused", fused_mixed_sum, fused_depthwise_conv2d)


def select_kernels(kind: str, device: torch.device | str,
                   on_status: Callable[[str], None] | None = None) -> Kernels:
    """``fused`` compiles the kernels for ``device`` (first use), checks them against the reference on that device
    (:func:`check_fused`) and fails with :class:`KernelBuildError` if they cannot be built or differ; ``auto`` falls
    back to ``reference`` then, telling ``on_status`` why."""
    if kind not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {', '.join(KERNEL_CHOICES)}, got {kind!r}")
    if kind == "reference":
        return REFERENCE
    device = torch.device(device)
    try:
        native.load(device.type, on_build=on_status)
        error = check_fused(device)
        if not error <= TOLERANCE:  # NaN fails too
            raise KernelBuildError(f"the fused kernels differ from the reference on {device.type} by "
                                   f"{error:.1e} (relative; at most {TOLERANCE:.0e} allowed)",
                                   "use --kernels reference, and report this with `dmc doctor`'s output")
    except KernelBuildError as exc:
        if kind == "fused":
            raise
        if on_status is not None:
            on_status(f"using the reference kernels: {exc}")
        return REFERENCE
    return FUSED
