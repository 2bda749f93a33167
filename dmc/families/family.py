"""The network-family interface: what dmc asks of a family of networks (the DARTS cell family, NAS-Bench-201, the
chain family), so that the rest of dmc never switches on which family it holds.

A family owns its search-space spec (``kind:`` in the YAML), its genotype type, its macro network (layout: stems,
stages, strides, channels, ``feature_info``), derivation, and its build settings with their checks. Families are
registered in :mod:`dmc.families.registry`; :func:`dmc.families.family_of` finds the family of any space, genotype
or macro by its ``kind``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from dmc.kernels.select import REFERENCE, Kernels


class AnySpace(Protocol):
    """What every family's search space offers (:class:`dmc.families.cell.CellSpace`,
    :class:`dmc.families.chain.ChainSpace`)."""

    @property
    def name(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def row_noun(self) -> str:
        """What one row of its architecture weights is: ``edge`` or ``layer``."""
    @property
    def kind(self) -> str: ...
    @property
    def macro(self) -> Any: ...
    @property
    def alpha_groups(self) -> tuple[str, ...]: ...
    @property
    def search_defaults(self) -> tuple[tuple[str, Any], ...]: ...
    def candidates(self, group: str) -> tuple[tuple[str, ...], ...]: ...
    @property
    def operations(self) -> list[str]: ...
    @property
    def summary(self) -> str: ...
    @property
    def content_hash(self) -> str: ...
    def with_macro(self, **changes: Any) -> Any: ...
    def to_dict(self, include_description: bool = True) -> dict[str, Any]: ...


class AnyGenotype(Protocol):
    """What every family's genotype offers (:class:`dmc.families.cell.Genotype`,
    :class:`dmc.families.chain.ChainGenotype`)."""

    @property
    def kind(self) -> str: ...
    @property
    def space(self) -> str | None: ...
    @property
    def space_hash(self) -> str | None: ...
    @property
    def macro(self) -> Any: ...
    @property
    def deterministic(self) -> bool: ...
    @property
    def groups(self) -> tuple[str, ...]: ...
    def skip_count(self, group: str) -> int: ...
    def describe(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...
    def save(self, path: Any) -> Any: ...


@dataclass(frozen=True)
class SearchBlockOptions:
    """How a supernet builds its mixed blocks: PC-DARTS's partial channels and channel shuffle (cell families), and
    the kernels its mixed edges and their candidates run (:func:`dmc.kernels.select_kernels`)."""

    partial_channels: int = 1
    channel_shuffle: bool = False
    kernels: Kernels = REFERENCE


class BodyBuilder(Protocol):
    """What a family's layout is built into: :class:`dmc.network.MacroNetwork` (the supernet and compiled networks).

    A family adds its stem, then its blocks (made by the caller's factory, one per slot, or fixed ones such as
    NAS-Bench-201's residual blocks) and the end of each stage, then its head; the builder records
    ``feature_info`` as it goes."""

    def set_stem(self, stem: nn.Module, stem1: nn.Module | None, channels: int, stride: int) -> None: ...
    def add_block(self, make_block: Callable[[Any], nn.Module], slot: Any) -> nn.Module: ...
    def add_fixed_block(self, block: nn.Module) -> None: ...
    def end_stage(self, stride: int, channels: int | None = None) -> None: ...
    def set_head(self, head_act: nn.Module, channels: int) -> None: ...


class Family(Protocol):
    """A network family. ``name`` is the ``kind`` of its spaces, genotypes and macros."""

    name: str
    spec_kind: str
    """The ``kind:`` of its spec files (``cell`` for both cell families, ``chain``)."""
    genotype_kind: str
    """The ``kind`` field of its genotype files."""
    styles: tuple[str, ...]
    """The network styles it builds (``cifar``, ``imagenet``; ``nb201``; ``chain``)."""
    settings: tuple[str, ...]
    """The build settings of its networks (``channels``, ``layers``, ...; ``width``)."""
    search_methods: tuple[str, ...]
    """The search methods defined for its spaces (``darts``, ``pc-darts``, ``p-darts``)."""
    has_auxiliary_head: bool
    """Whether its networks can carry DARTS's auxiliary head (training only)."""

    # ---------------------------------------------------------------------------------------------- data
    def space_from_dict(self, data: Any, source: str) -> AnySpace: ...
    def genotype_from_dict(self, data: dict[str, Any], source: str) -> AnyGenotype: ...
    def macro_from_dict(self, data: Any, source: str) -> Any: ...

    # ---------------------------------------------------------------------------------------------- settings
    def check_settings(self, settings: Mapping[str, Any], subject: str = "") -> None:
        """Refuses a build or search setting (given, not None) that belongs to another family, naming it;
        ``subject`` leads the message (``"s5 is a chain space"``)."""
    def style_of(self, macro: Any) -> str: ...
    def default_macro(self, style: str) -> tuple[Any, int]:
        """The reference macro network of ``style`` and its number of classes."""
    def build_macro(self, genotype: AnyGenotype, style: str | None, settings: Mapping[str, Any]) -> tuple[Any, int]:
        """The macro network ``genotype`` is built on (as searched, at its family's evaluation size) and its
        default number of classes, before ``settings`` override single fields."""
    def replace_macro(self, macro: Any, style: str | None, settings: Mapping[str, Any]) -> Any:
        """``macro`` with settings changed (style, and the family's :attr:`settings`; None = keep)."""
    def input_size(self, macro: Any) -> int: ...
    def describe_macro(self, macro: Any) -> str: ...

    # ---------------------------------------------------------------------------------------------- layout
    def build_body(self, builder: BodyBuilder, macro: Any, in_channels: int,
                   make_block: Callable[[Any], nn.Module]) -> None: ...
    def stem_states(self, stem: nn.Module, stem1: nn.Module | None, x: torch.Tensor) -> list[torch.Tensor]: ...
    def strides(self, macro: Any, blocks: nn.ModuleList, stem1: nn.Module | None) -> list[tuple[str | None, int]]:
        """(name of a block that needs an even input or None, stride) in forward order."""

    # ---------------------------------------------------------------------------------------------- search
    def check_search(self, space: AnySpace, method: str, options: SearchBlockOptions) -> None: ...
    def search_block(self, space: AnySpace, options: SearchBlockOptions) -> Callable[[Any], nn.Module]: ...
    def derive(self, alphas: Mapping[str, torch.Tensor], space: AnySpace,
               edge_norms: Mapping[str, torch.Tensor] | None) -> AnyGenotype: ...

    def chosen_candidates(self, genotype: AnyGenotype, space: AnySpace) -> dict[str, list[tuple[int, int]]]:
        """What ``genotype`` (checked against ``space``) keeps, in alpha coordinates: per group, the (row,
        candidate index) pairs of its chosen operations."""
        ...

    # ---------------------------------------------------------------------------------------------- deploy
    def check_genotype_in_space(self, genotype: AnyGenotype, space: AnySpace) -> None: ...
    def resized_space(self, space: AnySpace, macro: Any) -> AnySpace:
        """``space`` at the size of ``macro`` (a genotype's), as the search that derived it resized it."""
    def deploy_block(self, genotype: AnyGenotype, macro: Any) -> Callable[[Any], nn.Module]: ...
    def auxiliary_head(self, macro: Any, blocks: nn.ModuleList, num_classes: int) -> tuple[int, nn.Module] | None:
        """DARTS's auxiliary head and the block it follows; None where the family has none."""
