"""Ops that run parts of their forward through fused kernels, chosen per instance: when the op is built
(``kernels=``, :meth:`dmc.ops.OpSpec.build`), or later by :func:`use_kernels`. Nothing class-level or
process-wide decides what an op computes."""

from __future__ import annotations

from torch import nn

from dmc.kernels.select import Kernels


class UsesKernels:
    """An op with fused implementations of parts of its forward (:class:`dmc.kernels.Kernels`): same math, same
    parameters, so what was searched with them is what is deployed without."""

    def set_kernels(self, kernels: Kernels) -> None:
        """Runs this op's own parts (not those of the ops inside it) with ``kernels``."""
        raise NotImplementedError


def use_kernels(module: nn.Module, kernels: Kernels) -> None:
    """Runs every op in ``module`` (itself included) with ``kernels``."""
    for op in module.modules():
        if isinstance(op, UsesKernels):
            op.set_kernels(kernels)
