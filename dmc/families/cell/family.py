"""The cell families: DARTS's (two-input cells, reduction cells; CIFAR or ImageNet stems) and NAS-Bench-201's
(one-input cells in three stages joined by residual blocks). They share the spec, genotype and derivation; their
layouts differ."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, cast

import torch
from torch import nn

from dmc.errors import InvalidInputError, SettingError
from dmc.families.cell.derive import derive_cells
from dmc.families.cell.genotype import Genotype
from dmc.families.cell.layout import cell_stem_states, cell_strides, darts_body, nb201_body
from dmc.families.cell.macro import CellSlot, Macro
from dmc.families.cell.space import CellSpace, cell_space_from_dict
from dmc.families.family import AnyGenotype, AnySpace, BodyBuilder, SearchBlockOptions
from dmc.families.settings import check_family_settings
from dmc.network.cell import Cell

CELL_SETTINGS = ("channels", "layers", "stem_multiplier", "reductions")
"""Build settings that change a cell network's macro."""


class CellFamily:
    """A cell family: ``darts`` or ``nb201`` (see :class:`dmc.families.cell.Macro` for their networks)."""

    spec_kind: str = "cell"
    settings: tuple[str, ...] = CELL_SETTINGS
    search_methods: tuple[str, ...] = ("darts", "pc-darts", "p-darts")

    def __init__(self, name: str, styles: tuple[str, ...], body: Callable[..., None], inputs: int,
                 references: dict[str, tuple[Macro, int]]):
        self.name = self.genotype_kind = name
        self.styles = styles
        self.has_auxiliary_head = name == "darts"
        self._body, self._inputs, self._references = body, inputs, references

    # ---------------------------------------------------------------------------------------------- data
    def space_from_dict(self, data: Any, source: str) -> CellSpace:
        return cell_space_from_dict(data, source)

    def genotype_from_dict(self, data: dict[str, Any], source: str) -> Genotype:
        return Genotype.from_dict(data, source)

    def macro_from_dict(self, data: Any, source: str) -> Macro:
        return Macro.from_dict(data, source)

    # ---------------------------------------------------------------------------------------------- settings
    def check_settings(self, settings: Mapping[str, Any], subject: str = "") -> None:
        check_family_settings(self.name, self.settings, settings, subject)

    def style_of(self, macro: Macro) -> str:
        return macro.stem if self.name == "darts" else self.name

    def default_macro(self, style: str) -> tuple[Macro, int]:
        """DARTS CIFAR (36 channels, 20 cells), ImageNet (48, 14), NAS-Bench-201 (16, 5 per stage)."""
        return self._references[style]

    def build_macro(self, genotype: AnyGenotype, style: str | None, settings: Mapping[str, Any]) -> tuple[Macro, int]:
        """The reference macro of the genotype's style (or ``style``) with the genotype's stem multiplier and
        reduction positions. Reduction positions given in the search space (not the default thirds) fit only the
        depth they were searched at: another depth needs its own ``reductions``."""
        searched: Macro | None = genotype.macro
        default, num_classes = self.default_macro(style or (self.style_of(searched) if searched else self.styles[0]))
        if searched is None or searched.kind != default.kind:
            return default, num_classes
        macro = dataclasses.replace(default, stem_multiplier=searched.stem_multiplier)
        if searched.reductions is not None and settings.get("reductions") is None:
            layers = settings.get("layers") or macro.layers
            if layers != searched.layers:
                raise SettingError(
                    f"the genotype was searched with reduction cells at {list(searched.reductions)} of "
                    f"{searched.layers} cells; {layers} cells need their own reduction positions",
                    f"compile with {{layers}} {searched.layers}, or give {{reductions}} for {layers} cells")
            macro = dataclasses.replace(macro, layers=layers, reductions=searched.reductions)
        return macro, num_classes

    def replace_macro(self, macro: Macro, style: str | None, settings: Mapping[str, Any]) -> Macro:
        changes = {k: v for k, v in settings.items() if v is not None}
        if style is not None:
            kind, stem = ("nb201", "cifar") if style == "nb201" else ("darts", style)
            if kind != macro.kind:  # another family: its own reduction rule
                changes.setdefault("reductions", None)
            changes = {"kind": kind, "stem": stem, **changes}
        if changes.get("reductions") is not None:
            changes["reductions"] = tuple(changes["reductions"])
        return dataclasses.replace(macro, **changes) if changes else macro

    def input_size(self, macro: Macro) -> int:
        return 224 if macro.stem == "imagenet" else 32

    def describe_macro(self, macro: Macro) -> str:
        return f"{macro.channels} channels, {macro.layers} cells" + (" per stage" if self.name == "nb201" else "")

    # ---------------------------------------------------------------------------------------------- layout
    def build_body(self, builder: BodyBuilder, macro: Macro, in_channels: int,
                   make_block: Callable[[Any], nn.Module]) -> None:
        self._body(builder, macro, in_channels, make_block)

    def stem_states(self, stem: nn.Module, stem1: nn.Module | None, x: torch.Tensor) -> list[torch.Tensor]:
        return cell_stem_states(stem, stem1, x, self._inputs)

    def strides(self, macro: Macro, blocks: nn.ModuleList, stem1: nn.Module | None) -> list[tuple[str | None, int]]:
        return cell_strides(blocks, stem1)

    # ---------------------------------------------------------------------------------------------- search
    def check_search(self, space: AnySpace, method: str, options: SearchBlockOptions) -> None:
        pass  # every method is defined for cell spaces

    def search_block(self, space: AnySpace, options: SearchBlockOptions) -> Callable[[Any], nn.Module]:
        from dmc.supernet.search_blocks import search_cell  # at call time: dmc.supernet's package imports us

        assert isinstance(space, CellSpace)
        return lambda slot: search_cell(space, slot, options)

    def derive(self, alphas: Mapping[str, torch.Tensor], space: AnySpace,
               edge_norms: Mapping[str, torch.Tensor] | None) -> Genotype:
        assert isinstance(space, CellSpace)
        return derive_cells(alphas, space, edge_norms)

    def chosen_candidates(self, genotype: AnyGenotype, space: AnySpace) -> dict[str, list[tuple[int, int]]]:
        assert isinstance(genotype, Genotype) and isinstance(space, CellSpace)
        edge_index = {edge: e for e, edge in enumerate(space.edges)}
        chosen: dict[str, list[tuple[int, int]]] = {}
        for cell_type, cell in genotype.cells.items():
            candidates = space.cell(cell_type).edges
            chosen[cell_type] = [(edge_index[(n, j)], candidates[edge_index[(n, j)]].index(op))
                                 for n, node in enumerate(cell.nodes) for op, j in node]
        return chosen

    # ---------------------------------------------------------------------------------------------- deploy
    def check_genotype_in_space(self, genotype: AnyGenotype, space: AnySpace) -> None:
        assert isinstance(genotype, Genotype) and isinstance(space, CellSpace)
        edge_index = {edge: e for e, edge in enumerate(space.edges)}
        for cell_type, cell in genotype.cells.items():
            if cell_type not in space.cell_types:
                raise InvalidInputError(f"cells.{cell_type}: space {space.name!r} has no {cell_type} cell")
            if len(cell.nodes) != space.nodes:
                raise InvalidInputError(f"cells.{cell_type}: {len(cell.nodes)} nodes, but space {space.name!r} has "
                                        f"{space.nodes}")
            candidates = space.cell(cell_type).edges
            for n, node in enumerate(cell.nodes):
                for op, j in node:
                    e = edge_index.get((n, j))
                    if e is None:
                        raise InvalidInputError(f"cells.{cell_type}.nodes[{n}]: input {j} is not wired to this "
                                                f"node in space {space.name!r}")
                    if op not in candidates[e]:
                        raise InvalidInputError(f"cells.{cell_type}.nodes[{n}]: op {op!r} on input {j} is not a "
                                                f"candidate of space {space.name!r} (allowed: "
                                                f"{', '.join(candidates[e])})")

    def resized_space(self, space: AnySpace, macro: Macro) -> AnySpace:
        return space.with_macro(channels=macro.channels, layers=macro.layers)

    def deploy_block(self, genotype: AnyGenotype, macro: Macro) -> Callable[[Any], nn.Module]:
        from dmc.compiler.cell import DerivedCell  # at call time: dmc.compiler's package imports us

        assert isinstance(genotype, Genotype)
        return lambda slot: DerivedCell(genotype.cells[slot.cell_type], genotype.inputs, slot)

    def auxiliary_head(self, macro: Macro, blocks: nn.ModuleList, num_classes: int) -> tuple[int, nn.Module] | None:
        from dmc.compiler.heads import AuxiliaryHeadCIFAR, AuxiliaryHeadImageNet

        reductions = macro.reduction_positions()
        if not reductions:
            return None
        head = AuxiliaryHeadCIFAR if macro.stem == "cifar" else AuxiliaryHeadImageNet
        position = reductions[-1]
        return position, head(cast(Cell, blocks[position]).out_channels, num_classes)


DARTS = CellFamily("darts", ("cifar", "imagenet"), darts_body, 2,
                   {"cifar": (Macro("darts", 36, 20, "cifar"), 10),
                    "imagenet": (Macro("darts", 48, 14, "imagenet"), 1000)})
NB201 = CellFamily("nb201", ("nb201",), nb201_body, 1, {"nb201": (Macro("nb201", 16, 5), 10)})

__all__ = ["CELL_SETTINGS", "DARTS", "NB201", "CellFamily", "CellSlot"]
