"""Declarative search spaces: YAML specs (``spaces/*.yaml``) loaded into the frozen, validated space of their
network family (``kind: cell`` or ``kind: chain``; see :mod:`dmc.families`).

A spec is complete on its own. Every problem is reported as one line naming the file, the field path
and the allowed values, e.g. ``spaces/my.yaml: cell.normal.edges[3][1]: unknown op 'sep_conv_9x9' (known: ...)``.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from dmc.families import AnySpace, family_for_spec, spec_kinds
from dmc.io import read_yaml
from dmc.spec_checks import SpecChecks, SpecError

# ----------------------------------------------------------------------------------------------- loading


def bundled_spaces() -> dict[str, Path]:
    """Name -> path of the specs shipped with dmc (the ``spaces/`` folder)."""
    folder = importlib.resources.files("dmc.spaces")
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def load_space(name_or_path: str | Path) -> AnySpace:
    """Loads a spec file, or a bundled space by name (``darts_s0``, ``rdarts_s3``, ``nb201``, ...).

    An existing file is read as a spec; any other name (even that of a folder) is looked up among the bundled
    spaces."""
    path = Path(name_or_path)
    if not path.is_file():
        bundled = bundled_spaces()
        if str(name_or_path) not in bundled:
            problem = "is a folder, not a spec file" if path.is_dir() else "no such spec file or bundled space"
            raise SpecError(f"{name_or_path}: {problem}", f"bundled spaces: {', '.join(sorted(bundled))}")
        path = bundled[str(name_or_path)]
    return space_from_dict(read_yaml(path, SpecError), str(path))


def space_from_dict(data: Any, source: str = "<memory>") -> AnySpace:
    """Validates plain data (a parsed spec) into the space of the family its ``kind:`` names (``cell``: a
    :class:`dmc.families.cell.CellSpace`, ``chain``: a :class:`dmc.families.chain.ChainSpace`)."""
    kind = data.get("kind", "cell") if isinstance(data, dict) else "cell"
    family = family_for_spec(kind) if isinstance(kind, str) else None
    if family is None:
        SpecChecks(source).choice(kind, "kind", spec_kinds())
        raise AssertionError("unreachable: choice() refuses an unknown kind")
    return family.space_from_dict(data, source)
