"""Deployability checks between a genotype and the search space it claims to come from."""

from __future__ import annotations

import functools

from dmc.chain_genotype import ChainGenotype
from dmc.chain_space import ChainSpace
from dmc.errors import InvalidInputError
from dmc.genotype import Genotype
from dmc.network.chain_macro import ChainMacro
from dmc.network.macro import Macro
from dmc.space import SearchSpace, bundled_spaces, load_space


def check_genotype_in_space(genotype: Genotype | ChainGenotype, space: SearchSpace | ChainSpace) -> None:
    """Raises unless ``genotype`` could have been derived from ``space``: same family, node count (chain: same
    skeleton, at any width), and every kept (op, input) among that edge's (layer's) candidates."""
    if genotype.space is not None and genotype.space != space.name:
        raise InvalidInputError(f"the genotype comes from space {genotype.space!r}, not {space.name!r}",
                                f"compile it with --space {genotype.space}, or without --space")
    if genotype.space_hash is not None and genotype.space == space.name and genotype.space_hash != space.content_hash:
        raise InvalidInputError(f"the genotype's space {space.name!r} had hash {genotype.space_hash}, but this "
                                f"{space.name!r} has {space.content_hash}: the spec changed since the search")
    if genotype.kind != space.macro.kind:
        raise InvalidInputError(f"a {genotype.kind} genotype does not belong to the {space.macro.kind} space "
                                f"{space.name!r}")
    if isinstance(genotype, ChainGenotype):
        assert isinstance(space, ChainSpace)  # the kinds match (checked above): chain genotypes, chain spaces
        _check_chain(genotype, space)
        return
    assert isinstance(space, SearchSpace)  # the kinds match (checked above): cell genotypes, cell spaces
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
                    raise InvalidInputError(f"cells.{cell_type}.nodes[{n}]: input {j} is not wired to this node "
                                            f"in space {space.name!r}")
                if op not in candidates[e]:
                    raise InvalidInputError(f"cells.{cell_type}.nodes[{n}]: op {op!r} on input {j} is not a "
                                            f"candidate of space {space.name!r} (allowed: {', '.join(candidates[e])})")


def _check_chain(genotype: ChainGenotype, space: ChainSpace) -> None:
    if genotype.macro.replace(width=space.macro.width) != space.macro:
        raise InvalidInputError(f"the genotype's skeleton is not the one of space {space.name!r}",
                                "compile it without --space")
    for i, (op, candidates) in enumerate(zip(genotype.layers, space.layers)):
        if op not in candidates:
            raise InvalidInputError(f"layers[{i}]: op {op!r} is not a candidate of space {space.name!r} "
                                    f"(allowed: {', '.join(candidates)})")


def check_genotype_in_named_space(genotype: Genotype | ChainGenotype) -> None:
    """Raises unless ``genotype`` could have been derived from the bundled space it names (``space.name``).

    Checked when it names a bundled space and gives no space hash, or the hash of that space at the genotype's
    width and depth (as `dmc search` resizes it); a genotype of another spec of the same name (a copy of a bundled
    spec, edited) has another hash, and is not checked."""
    if genotype.space not in bundled_spaces():
        return
    space = _bundled_space(genotype.space)
    if genotype.space_hash is not None:
        try:
            space = _resized(space, genotype)
        except InvalidInputError:  # the bundled space cannot take the genotype's size: another spec of that name
            return
        if space.content_hash != genotype.space_hash:
            return
    try:
        check_genotype_in_space(genotype, space)
    except InvalidInputError as exc:
        raise InvalidInputError(exc.message, f"the genotype names the bundled space {space.name}, which cannot "
                                             "produce it: fix the genotype, or the space it names") from None


@functools.cache
def _bundled_space(name: str) -> SearchSpace | ChainSpace:
    return load_space(name)


def _resized(space: SearchSpace | ChainSpace, genotype: Genotype | ChainGenotype) -> SearchSpace | ChainSpace:
    """``space`` at the genotype's width (chain) or channels and depth (cell), as the search that derived it; a
    genotype of another family raises :class:`InvalidInputError`."""
    macro = genotype.macro
    if macro is None:
        return space
    if isinstance(space, ChainSpace) and isinstance(macro, ChainMacro):
        return space.with_macro(width=macro.width)
    if isinstance(space, SearchSpace) and isinstance(macro, Macro):
        return space.with_macro(channels=macro.channels, layers=macro.layers)
    raise InvalidInputError(f"a {genotype.kind} genotype cannot be resized into the {space.kind} space {space.name!r}")
