"""Deployability checks between a genotype and the search space it claims to come from."""

from __future__ import annotations

import functools

from dmc.errors import InvalidInputError, SettingError
from dmc.families import AnyGenotype, AnySpace, family_of
from dmc.space import bundled_spaces, load_space


def check_genotype_in_space(genotype: AnyGenotype, space: AnySpace) -> None:
    """Raises unless ``genotype`` could have been derived from ``space``: same family, node count (chain: same
    skeleton, at any width), and every kept (op, input) among that edge's (layer's) candidates."""
    if genotype.space is not None and genotype.space != space.name:
        raise SettingError(f"the genotype comes from space {genotype.space!r}, not {space.name!r}",
                           f"compile it with {{space}} {genotype.space}, or without {{space}}")
    if genotype.space_hash is not None and genotype.space == space.name and genotype.space_hash != space.content_hash:
        raise InvalidInputError(f"the genotype's space {space.name!r} had hash {genotype.space_hash}, but this "
                                f"{space.name!r} has {space.content_hash}: the spec changed since the search")
    if genotype.kind != space.kind:
        raise InvalidInputError(f"a {genotype.kind} genotype does not belong to the {space.kind} space "
                                f"{space.name!r}")
    family_of(genotype).check_genotype_in_space(genotype, space)


def check_genotype_in_named_space(genotype: AnyGenotype) -> None:
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
def _bundled_space(name: str) -> AnySpace:
    return load_space(name)


def _resized(space: AnySpace, genotype: AnyGenotype) -> AnySpace:
    """``space`` at the genotype's size (its macro's width, or channels and depth), as the search that derived it;
    a genotype of another family raises :class:`InvalidInputError`."""
    if genotype.macro is None:
        return space
    if genotype.kind != space.kind:
        raise InvalidInputError(f"a {genotype.kind} genotype cannot be resized into the {space.kind} space "
                                f"{space.name!r}")
    return family_of(space).resized_space(space, genotype.macro)
