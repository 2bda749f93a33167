"""Deployability checks between a genotype and the search space it claims to come from."""

from __future__ import annotations

from dmc.chain_genotype import ChainGenotype
from dmc.chain_space import ChainSpace
from dmc.errors import InvalidInputError
from dmc.genotype import Genotype
from dmc.space import SearchSpace


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
    if isinstance(space, ChainSpace):
        _check_chain(genotype, space)
        return
    edge_index = {edge: e for e, edge in enumerate(space.edges)}
    for cell_type, cell in genotype.cells.items():
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
