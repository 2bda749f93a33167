"""Run folders of search and training: the per-epoch ``history.jsonl`` and the refusal to overwrite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dmc.errors import InvalidInputError
from dmc.io import atomic_write_text


def history_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "history.jsonl"


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of a run folder."""
    path = history_path(run_dir)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def keep_history(run_dir: str | Path, epochs: int) -> None:
    """Keeps the first ``epochs`` records: a record written after the last checkpoint is dropped on resume."""
    records = read_history(run_dir)[:epochs]
    atomic_write_text(history_path(run_dir), "".join(json.dumps(r) + "\n" for r in records))


def append_history(run_dir: str | Path, record: dict[str, Any]) -> None:
    with history_path(run_dir).open("a") as f:
        f.write(json.dumps(record) + "\n")


def claim_new_run_dir(run_dir: Path, marker: str, command: str) -> None:
    """Creates ``run_dir`` for a new run; refuses one that already holds a run (``marker`` file)."""
    if (run_dir / marker).exists() or (run_dir / "last.pt").exists():
        raise InvalidInputError(f"{run_dir} already holds a {command}",
                                "pass --resume to continue it, or choose another --out folder")
    run_dir.mkdir(parents=True, exist_ok=True)
