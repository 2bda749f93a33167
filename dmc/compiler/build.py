"""Building a compiled network from a genotype: its build arguments as searched, overridden field by field."""

from __future__ import annotations

from dmc.chain_genotype import ChainGenotype
from dmc.chain_space import ChainSpace
from dmc.compiler.build_args import BuildArgs
from dmc.compiler.checks import check_genotype_in_space
from dmc.compiler.networks import CompiledNetwork
from dmc.errors import InvalidInputError
from dmc.genotype import Genotype
from dmc.network import Macro
from dmc.space import SearchSpace


def build_network(genotype: Genotype | ChainGenotype, build_args: BuildArgs | None = None, *,
                  space: SearchSpace | ChainSpace | None = None, **overrides) -> CompiledNetwork:
    """Builds the network of ``genotype``.

    ``build_args`` defaults to :func:`build_args_for` (the wiring the genotype was searched with, at its
    family's evaluation width and depth); keyword ``overrides`` (None = keep) change single fields
    (``build_network(g, channels=16, layers=8, auxiliary=True)``; ``width=0.5`` for a chain genotype). With
    ``space``, the genotype must come from it.
    """
    if build_args is None:
        build_args = build_args_for(genotype, **overrides)
    build_args = build_args.replace(**overrides)
    if space is not None:
        check_genotype_in_space(genotype, space)
    return CompiledNetwork(genotype, build_args)


def build_args_for(genotype: Genotype | ChainGenotype, style: str | None = None, **overrides) -> BuildArgs:
    """The build arguments of ``genotype`` as searched.

    A chain genotype carries its skeleton: it is built at full width (the skeleton's own widths; a search
    usually runs narrower), as an ImageNet network of 1000 classes, unless overridden (``width``,
    ``num_classes``). A cell genotype keeps its macro network's stem, stem multiplier
    and reduction positions, with width and depth at the family's evaluation setting (DARTS CIFAR 36 channels
    and 20 cells, ImageNet 48 and 14, NAS-Bench-201 16 channels and 5 cells per stage) unless overridden.
    Reduction positions given in the search space (not the default thirds) fit only the depth they were
    searched at: another depth needs its own ``reductions``.
    """
    if isinstance(genotype, ChainGenotype):
        return BuildArgs(genotype.macro.replace(width=1.0), 1000).replace(style=style, **overrides)
    macro = genotype.macro
    searched_style = "nb201" if genotype.kind == "nb201" else (macro.stem if macro is not None else "cifar")
    if style == "chain":
        raise InvalidInputError(f"a {genotype.kind} genotype cannot be built as a chain network")
    args = BuildArgs.defaults_for(style or searched_style)
    if macro is None or args.macro.kind != macro.kind:
        return args.replace(**overrides)
    args = args.replace(stem_multiplier=macro.stem_multiplier)
    if macro.reductions is not None and overrides.get("reductions") is None:
        assert isinstance(args.macro, Macro)  # the defaults of a cell style: a cell macro
        layers = overrides.get("layers") or args.macro.layers
        if layers != macro.layers:
            raise InvalidInputError(
                f"the genotype was searched with reduction cells at {list(macro.reductions)} of {macro.layers} cells; "
                f"{layers} cells need their own reduction positions",
                f"compile with --layers {macro.layers}, or give --reductions for {layers} cells")
        args = args.replace(layers=layers, reductions=macro.reductions)
    return args.replace(**overrides)
