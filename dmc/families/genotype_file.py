"""The genotype file every family shares: ``{"format": "dmc.genotype", "version": 1, "kind": ..., "space": {...}}``
(the rest is the family's), and its errors."""

from __future__ import annotations

from typing import Any

from dmc.errors import InvalidInputError

GENOTYPE_FORMAT = "dmc.genotype"
GENOTYPE_VERSION = 1


class GenotypeError(InvalidInputError):
    """A genotype is malformed or inconsistent."""


def check_header(data: Any, source: str) -> None:
    """Refuses what is not a dmc genotype mapping of the version this dmc reads."""
    if not isinstance(data, dict) or data.get("format") != GENOTYPE_FORMAT:
        raise GenotypeError(f"{source}: not a dmc genotype (no \"format\": \"{GENOTYPE_FORMAT}\")",
                            "write one with `dmc derive`, or import DARTS text with Genotype.from_darts_text")
    if data.get("version") != GENOTYPE_VERSION:
        raise GenotypeError(f"{source}: genotype version {data.get('version')!r} is not supported "
                            f"(this dmc reads version {GENOTYPE_VERSION})", "upgrade dmc")


def space_fields(data: dict[str, Any], source: str) -> tuple[Any, Any]:
    """The (name, hash) of a genotype mapping's ``space`` (absent or null: no space); their types are checked by
    :func:`check_space_fields`, when the genotype is made."""
    space = data.get("space") or {}
    if not isinstance(space, dict) or set(space) - {"name", "hash"}:
        raise GenotypeError(f"{source}: space must be a mapping of a name and a hash (text or null)")
    return space.get("name"), space.get("hash")


def check_space_fields(name: Any, space_hash: Any) -> None:
    """Refuses a space name or hash that is not text or None."""
    for field, value in (("name", name), ("hash", space_hash)):
        if not isinstance(value, (str, type(None))):
            raise GenotypeError(f"space must be a mapping of a name and a hash (text or null); its {field} is "
                                f"{value!r}")
