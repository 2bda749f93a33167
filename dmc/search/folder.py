"""Reading a search run folder: the space it searched."""

from __future__ import annotations

from pathlib import Path

import yaml

from dmc.errors import InvalidInputError
from dmc.space import SearchSpace, space_from_dict


def load_run_space(run_dir: str | Path) -> SearchSpace:
    path = Path(run_dir) / "space.yaml"
    if not path.is_file():
        raise InvalidInputError(f"{run_dir}: not a search run folder (no space.yaml)",
                                "pass a folder written by `dmc search`")
    return space_from_dict(yaml.safe_load(path.read_text()), str(path))
