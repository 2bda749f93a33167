"""Choosing the mixed-sum implementation for a device: ``auto``, ``fused`` or ``reference``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from dmc.kernels import native
from dmc.kernels.native import KernelBuildError
from dmc.kernels.operator import fused_mixed_sum
from dmc.kernels.reference import mixed_sum

KERNEL_CHOICES = ("auto", "fused", "reference")


class MixedSum(Protocol):
    def __call__(self, outputs: list[torch.Tensor], weights: torch.Tensor, aux: torch.Tensor | None = None,
                 beta: torch.Tensor | None = None) -> torch.Tensor: ...


def select_mixed_sum(kind: str, device: torch.device | str,
                     on_status: Callable[[str], None] | None = None) -> tuple[str, MixedSum]:
    """Returns ``(resolved kind, function)``. ``fused`` compiles the kernels for ``device`` (first use)
    and fails with :class:`KernelBuildError` if it cannot; ``auto`` falls back to ``reference`` then,
    telling ``on_status`` why."""
    if kind not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {', '.join(KERNEL_CHOICES)}, got {kind!r}")
    if kind == "reference":
        return "reference", mixed_sum
    try:
        native.load(torch.device(device).type, on_build=on_status)
    except KernelBuildError as exc:
        if kind == "fused":
            raise
        if on_status is not None:
            on_status(f"using the reference mixed sum: {exc}")
        return "reference", mixed_sum
    return "fused", fused_mixed_sum
