"""Genotype files of every family: dmc's versioned JSON (any family), DARTS ``Genotype(...)`` text and NAS-Bench-201
strings (cell genotypes), and the published architectures bundled with dmc."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dmc.errors import InvalidInputError
from dmc.families import AnyGenotype, families, family_for_genotype
from dmc.families.cell.genotype import Genotype
from dmc.families.chain.genotype import ChainGenotype
from dmc.families.genotype_file import GenotypeError, check_header
from dmc.genotype_checks import check_genotype_in_named_space
from dmc.io import parse_json, read_text


def genotype_from_dict(data: Any, source: str = "genotype") -> AnyGenotype:
    """Reads dmc's genotype JSON of any family (by its ``kind``), checked against the bundled space it names."""
    check_header(data, source)
    kind = data.get("kind", "darts")
    family = family_for_genotype(kind) if isinstance(kind, str) else None
    if family is None:
        known = dict.fromkeys(f.genotype_kind for f in families().values())
        raise GenotypeError(f"{source}: kind {kind!r} is not supported (allowed: {', '.join(known)})")
    genotype = family.genotype_from_dict(data, source)
    try:
        check_genotype_in_named_space(genotype)
    except InvalidInputError as exc:
        raise GenotypeError(f"{source}: {exc.message}", exc.hint) from None
    return genotype


def load_genotype(path: str | Path) -> AnyGenotype:
    """Reads a genotype file: dmc JSON, DARTS ``Genotype(...)`` text, or a NAS-Bench-201 string."""
    path = Path(path)
    stripped = read_text(path, "genotype file", GenotypeError).strip()
    if stripped.startswith("{"):
        return genotype_from_dict(parse_json(stripped, str(path), GenotypeError), str(path))
    try:
        if stripped.startswith("Genotype("):
            return Genotype.from_darts_text(stripped)
        if stripped.startswith("|"):
            return Genotype.from_nb201_string(stripped)
    except GenotypeError as exc:
        raise GenotypeError(f"{path}: {exc.message}", exc.hint) from None
    raise GenotypeError(f"{path}: not a genotype", "expected dmc JSON, DARTS Genotype(...) text or a "
                                                   "NAS-Bench-201 |op~0|+|...| string")


def published_genotypes() -> dict[str, AnyGenotype]:
    """The published architectures bundled with dmc: DARTS_V2 and the DARTS- cells (``cifar10_s3_0``, ...), and
    the chain networks FairNAS_A/B/C, NoisyDARTS_A and mobilenet_v2."""
    import importlib.resources

    folder = importlib.resources.files("dmc.reference")
    cells = json.loads(folder.joinpath("published_genotypes.json").read_text())
    chains = json.loads(folder.joinpath("published_chains.json").read_text())
    return ({name: Genotype.from_darts(**fields, space=None) for name, fields in cells["genotypes"].items()}
            | {name: ChainGenotype.from_dict(data, name) for name, data in chains["networks"].items()})
