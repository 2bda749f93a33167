"""The registry of network families: every family dmc knows, found by name (the ``kind`` of a space, genotype or
macro network) or by the ``kind:`` of a spec file.

A new family is one module implementing :class:`dmc.families.family.Family` and one :func:`register_family` call
(here for the bundled families, or in user code before the family's specs and genotypes are read).
"""

from __future__ import annotations

from typing import Any

from dmc.errors import InvalidInputError
from dmc.families.cell.family import DARTS, NB201
from dmc.families.chain.family import CHAIN
from dmc.families.family import Family

_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Adds ``family``; its name must be new."""
    if family.name in _FAMILIES:
        raise ValueError(f"a network family named {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Removes a family registered by :func:`register_family` (tests register toy families)."""
    del _FAMILIES[name]


def families() -> dict[str, Family]:
    """Name -> family, in registration order."""
    return dict(_FAMILIES)


def get_family(name: str) -> Family:
    """The family called ``name``."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise InvalidInputError(f"network family {name!r} is unknown (known: {', '.join(_FAMILIES)})") from None


def family_of(item: Any) -> Family:
    """The family of a space, genotype or macro network (anything with a family ``kind``)."""
    return get_family(item.kind)


def macro_from_dict(data: Any, source: str = "macro") -> Any:
    """The macro network of the family its ``kind`` names (a cell network's when absent or unknown: its checks
    name the allowed kinds)."""
    kind = data.get("kind", "darts") if isinstance(data, dict) else "darts"
    family = _FAMILIES.get(kind) if isinstance(kind, str) else None
    return (family or _FAMILIES["darts"]).macro_from_dict(data, source)


def spec_kinds() -> tuple[str, ...]:
    """The ``kind:`` values of spec files, one per parser (the two cell families share ``cell``)."""
    return tuple(dict.fromkeys(f.spec_kind for f in _FAMILIES.values()))


def family_for_spec(kind: str) -> Family | None:
    """The family that parses specs of ``kind:`` (the first registered with it), None for an unknown kind."""
    return next((f for f in _FAMILIES.values() if f.spec_kind == kind), None)


def family_for_genotype(kind: str) -> Family | None:
    """The family that reads genotype files of ``kind``, None for an unknown kind."""
    return next((f for f in _FAMILIES.values() if f.genotype_kind == kind), None)


register_family(DARTS)
register_family(NB201)
register_family(CHAIN)
