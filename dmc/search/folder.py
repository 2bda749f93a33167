"""Reading a search run folder: its space and its per-epoch history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from dmc.errors import InvalidInputError
from dmc.space import SearchSpace, space_from_dict


def history_path(run_dir: Path) -> Path:
    return run_dir / "history.jsonl"


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of a run folder."""
    path = history_path(Path(run_dir))
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_run_space(run_dir: str | Path) -> SearchSpace:
    path = Path(run_dir) / "space.yaml"
    if not path.is_file():
        raise InvalidInputError(f"{run_dir}: not a search run folder (no space.yaml)",
                                "pass a folder written by `dmc search`")
    return space_from_dict(yaml.safe_load(path.read_text()), str(path))
