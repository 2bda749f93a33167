"""The operation registry: one table of named candidate operations for the supernet and the compiler."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from torch import nn

from dmc.errors import InvalidInputError
from dmc.kernels.select import REFERENCE, Kernels

OpFactory = Callable[..., nn.Module]
"""``factory(c_in, c_out, stride, affine)``, with ``act=`` for chain layers and ``kernels=`` for ops with fused
kernels (:meth:`OpSpec.build`)."""


@dataclass(frozen=True)
class OpSpec:
    """A candidate operation.

    ``factory(C_in, C_out, stride, affine)`` builds the module; ``affine`` is False in supernets
    (BatchNorm without learnable scale, as in DARTS) and True in compiled networks.
    """

    name: str
    factory: OpFactory
    description: str
    parametric: bool = False
    """Has learnable weights (the '#P' count of the DARTS- paper)."""
    pool: bool = False
    """A pooling op: DARTS supernets append BatchNorm(affine=False) to it."""
    zero: bool = False
    """Always outputs zeros ('none'): mixed edges skip computing it, derivation ignores it."""
    deterministic: bool = True
    """False for ops whose output is random ('noise' of R-DARTS S4)."""
    chain: bool = False
    """A chain-space layer (takes the network's ``act``); the others are cell-space edges."""
    skip: bool = False
    """Passes its input through where the shape is kept (a chain layer that derivation may remove)."""
    groups: int = 1
    """Groups of its 1x1 convs (FBNet's ``_g2`` layers: 2): the widths of a layer it takes must divide by it."""
    fused: bool = False
    """Runs parts of its forward through fused kernels (:class:`dmc.ops.fused.UsesKernels`): takes ``kernels=``."""

    def build(self, c_in: int, c_out: int, stride: int, affine: bool, act: str = "relu",
              kernels: Kernels = REFERENCE) -> nn.Module:
        """The module; ``act`` is the activation of chain layers (cell ops have theirs built in), ``kernels`` the
        implementations an op with fused kernels runs (the others ignore it)."""
        options: dict[str, Any] = {}
        if self.chain:
            options["act"] = act
        if self.fused:
            options["kernels"] = kernels
        return self.factory(c_in, c_out, stride, affine, **options)


class OpRegistry:
    """Name -> :class:`OpSpec`; refuses duplicate names."""

    def __init__(self) -> None:
        self._ops: dict[str, OpSpec] = {}

    def register(self, name: str, description: str, **flags) -> Callable[[OpFactory], OpFactory]:
        def add(factory: OpFactory) -> OpFactory:
            if name in self._ops:
                raise ValueError(f"operation {name!r} is already registered")
            self._ops[name] = OpSpec(name, factory, description, **flags)
            return factory

        return add

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._ops  # a list or mapping read from YAML is no name

    def __iter__(self) -> Iterator[OpSpec]:
        return iter(self._ops.values())

    def names(self) -> list[str]:
        return list(self._ops)

    def __getitem__(self, name: str) -> OpSpec:
        try:
            return self._ops[name]
        except (KeyError, TypeError):  # TypeError: an unhashable "name" (a list or mapping read from YAML)
            raise InvalidInputError(f"unknown operation {name!r}",
                                    f"known operations: {', '.join(self._ops)}") from None
