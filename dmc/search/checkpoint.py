"""Search checkpoints (``last.pt``, ``best.pt`` of a run folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmc.checkpoints import load_checkpoint, save_checkpoint

SEARCH_CHECKPOINT = "dmc.search-checkpoint"


def save_search_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    return save_checkpoint(path, SEARCH_CHECKPOINT, state)


def load_search_checkpoint(path: str | Path) -> dict[str, Any]:
    return load_checkpoint(path, (SEARCH_CHECKPOINT,), "dmc search checkpoint",
                           "use another checkpoint of the run (best.pt / last.pt) or rerun the search")
