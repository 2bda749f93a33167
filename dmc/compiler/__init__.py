"""The genotype compiler: genotype + build arguments -> a standalone PyTorch network (no supernet code)."""

from __future__ import annotations

from dmc.compiler.build_args import STYLES, BuildArgs
from dmc.compiler.checks import check_genotype_in_space
from dmc.compiler.networks import CompiledNetwork, DartsNetwork, NB201Network
from dmc.compiler.saved import load_network, save_network
from dmc.genotype import Genotype
from dmc.space import SearchSpace


def compile(genotype: Genotype, build_args: BuildArgs | None = None, *, space: SearchSpace | None = None,
            **overrides) -> CompiledNetwork:
    """Builds the network of ``genotype``.

    ``build_args`` defaults to the reference setting of the network family (``style`` override, else the
    genotype's: DARTS CIFAR 36 channels and 20 cells, ImageNet 48 and 14, NAS-Bench-201 16 channels and 5
    cells per stage); keyword ``overrides`` (None = keep) change single fields
    (``compile(g, channels=16, layers=8, auxiliary=True)``). With ``space``, the genotype must come from it.
    """
    if build_args is None:  # the reference setting of the chosen (or the genotype's) network family
        style = overrides.pop("style", None) or ("nb201" if genotype.kind == "nb201" else "cifar")
        build_args = BuildArgs.defaults_for(style)
    build_args = build_args.replace(**overrides)
    if space is not None:
        check_genotype_in_space(genotype, space)
    network_class = NB201Network if build_args.style == "nb201" else DartsNetwork
    return network_class(genotype, build_args)


__all__ = ["STYLES", "BuildArgs", "CompiledNetwork", "DartsNetwork", "NB201Network", "compile", "load_network",
           "save_network"]
