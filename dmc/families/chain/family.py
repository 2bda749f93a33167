"""The chain family (MobileNetV2-like networks: FBNet, ProxylessNAS/FairNAS, the paper's S5): one operation per
searchable layer of a fixed skeleton."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from dmc.errors import InvalidInputError, SettingError
from dmc.families.alpha_weights import edge_weights
from dmc.families.chain.genotype import ChainGenotype
from dmc.families.chain.layout import chain_body, chain_stem_states, chain_strides
from dmc.families.chain.macro import ChainMacro
from dmc.families.chain.space import ChainSpace, chain_space_from_dict
from dmc.families.family import AnyGenotype, AnySpace, BodyBuilder, SearchBlockOptions
from dmc.families.settings import check_family_settings


class ChainFamily:
    """The chain family: its spaces are :class:`ChainSpace`, its genotypes :class:`ChainGenotype`, its networks
    :class:`ChainMacro` skeletons scaled by ``width``."""

    name: str = "chain"
    genotype_kind: str = "chain"
    spec_kind: str = "chain"
    styles: tuple[str, ...] = ("chain",)
    settings: tuple[str, ...] = ("width",)
    search_methods: tuple[str, ...] = ("darts",)
    has_auxiliary_head: bool = False

    # ---------------------------------------------------------------------------------------------- data
    def space_from_dict(self, data: Any, source: str) -> ChainSpace:
        return chain_space_from_dict(data, source)

    def genotype_from_dict(self, data: dict[str, Any], source: str) -> ChainGenotype:
        return ChainGenotype.from_dict(data, source)

    def macro_from_dict(self, data: Any, source: str) -> ChainMacro:
        return ChainMacro.from_dict(data, source)

    # ---------------------------------------------------------------------------------------------- settings
    def check_settings(self, settings: Mapping[str, Any], subject: str = "") -> None:
        check_family_settings(self.name, self.settings, settings, subject)

    def style_of(self, macro: ChainMacro) -> str:
        return "chain"

    def default_macro(self, style: str) -> tuple[ChainMacro, int]:
        raise SettingError("chain networks have no reference macro: they take their skeleton from the genotype",
                           "build a chain genotype, scaled with {width}")

    def build_macro(self, genotype: AnyGenotype, style: str | None,
                    settings: Mapping[str, Any]) -> tuple[ChainMacro, int]:
        """The genotype's skeleton at full width (a search usually runs narrower), as an ImageNet network."""
        return genotype.macro.replace(width=1.0), 1000

    def replace_macro(self, macro: ChainMacro, style: str | None, settings: Mapping[str, Any]) -> ChainMacro:
        return macro.replace(**settings)

    def input_size(self, macro: ChainMacro) -> int:
        return 224

    def describe_macro(self, macro: ChainMacro) -> str:
        return f"width {macro.width:g}, {macro.num_layers} layers"

    # ---------------------------------------------------------------------------------------------- layout
    def build_body(self, builder: BodyBuilder, macro: ChainMacro, in_channels: int,
                   make_block: Callable[[Any], nn.Module]) -> None:
        chain_body(builder, macro, in_channels, make_block)

    def stem_states(self, stem: nn.Module, stem1: nn.Module | None, x: torch.Tensor) -> list[torch.Tensor]:
        return chain_stem_states(stem, stem1, x)

    def strides(self, macro: ChainMacro, blocks: nn.ModuleList,
                stem1: nn.Module | None) -> list[tuple[str | None, int]]:
        return chain_strides(macro, blocks)

    # ---------------------------------------------------------------------------------------------- search
    def check_search(self, space: AnySpace, method: str, options: SearchBlockOptions) -> None:
        if method not in self.search_methods:
            raise SettingError(f"{space.name} is a chain space: {{method}} {method} (partial channels, edge "
                               "normalisation, progressive stages) is defined for cell spaces",
                               "search it with {method} darts")

    def search_block(self, space: AnySpace, options: SearchBlockOptions) -> Callable[[Any], nn.Module]:
        from dmc.supernet.search_blocks import search_layer  # at call time: dmc.supernet's package imports us

        assert isinstance(space, ChainSpace)
        return lambda slot: search_layer(space, slot, options)

    def chosen_candidates(self, genotype: AnyGenotype, space: AnySpace) -> dict[str, list[tuple[int, int]]]:
        assert isinstance(genotype, ChainGenotype) and isinstance(space, ChainSpace)
        return {"layers": [(row, ops.index(op)) for row, (op, ops) in enumerate(zip(genotype.layers,
                                                                                   space.layer_candidates))]}

    def derive(self, alphas: Mapping[str, torch.Tensor], space: AnySpace,
               edge_norms: Mapping[str, torch.Tensor] | None) -> ChainGenotype:
        """Every layer keeps its strongest op, 'skip' included (a skip that keeps the shape removes the layer, so
        the depth is searched too)."""
        assert isinstance(space, ChainSpace)
        weights = edge_weights(alphas["layers"].detach().cpu(), space, "layers")
        layers = tuple(ops[max(range(len(ops)), key=lambda k: (w[k].item(), -k))]
                       for w, ops in zip(weights, space.layer_candidates))
        return ChainGenotype(layers, space.macro, space.name, space.content_hash)

    # ---------------------------------------------------------------------------------------------- deploy
    def check_genotype_in_space(self, genotype: AnyGenotype, space: AnySpace) -> None:
        assert isinstance(genotype, ChainGenotype) and isinstance(space, ChainSpace)
        if genotype.macro.replace(width=space.macro.width) != space.macro:
            raise SettingError(f"the genotype's skeleton is not the one of space {space.name!r}",
                               "compile it without {space}")
        for i, (op, candidates) in enumerate(zip(genotype.layers, space.layer_candidates)):
            if op not in candidates:
                raise InvalidInputError(f"layers[{i}]: op {op!r} is not a candidate of space {space.name!r} "
                                        f"(allowed: {', '.join(candidates)})")

    def resized_space(self, space: AnySpace, macro: ChainMacro) -> AnySpace:
        return space.with_macro(width=macro.width)

    def deploy_block(self, genotype: AnyGenotype, macro: ChainMacro) -> Callable[[Any], nn.Module]:
        from dmc.compiler.cell import derived_layer  # at call time: dmc.compiler's package imports us

        assert isinstance(genotype, ChainGenotype)
        return lambda slot: derived_layer(genotype, macro, slot)

    def auxiliary_head(self, macro: ChainMacro, blocks: nn.ModuleList, num_classes: int) -> None:
        return None


CHAIN = ChainFamily()
