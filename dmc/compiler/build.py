"""Building a compiled network from a genotype: its build arguments as searched, overridden field by field."""

from __future__ import annotations

from dmc.compiler.build_args import BuildArgs, builds_style, family_of_style
from dmc.compiler.networks import CompiledNetwork
from dmc.errors import SettingError
from dmc.families import AnyGenotype, AnySpace, family_of
from dmc.genotype_checks import check_genotype_in_space


def build_network(genotype: AnyGenotype, build_args: BuildArgs | None = None, *,
                  space: AnySpace | None = None, **overrides) -> CompiledNetwork:
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


def build_args_for(genotype: AnyGenotype, style: str | None = None, **overrides) -> BuildArgs:
    """The build arguments of ``genotype`` as searched.

    Each family decides (:meth:`dmc.families.Family.build_macro`): a chain genotype carries its skeleton and is
    built at full width (the skeleton's own widths; a search usually runs narrower), as an ImageNet network of
    1000 classes; a cell genotype keeps its macro network's stem, stem multiplier and reduction positions, with
    width and depth at the family's evaluation setting (DARTS CIFAR 36 channels and 20 cells, ImageNet 48 and 14,
    NAS-Bench-201 16 channels and 5 cells per stage). ``overrides`` then change single fields.
    """
    family = family_of(genotype)
    if style is not None:
        if not builds_style(family, style):
            raise SettingError(f"a {genotype.kind} genotype cannot be built as a {style} network",
                               f"build it with {{style}} {' or '.join(family.styles)}")
        family = family_of_style(style)  # the other cell family's style: its network refuses what does not fit
    macro, num_classes = family.build_macro(genotype, style, overrides)
    return BuildArgs(macro, num_classes).replace(**overrides)
