"""dmc's own files of tensors (search and training checkpoints, network files): written atomically,
read as data (``weights_only=True``) with one-line errors."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from dmc.errors import InvalidInputError
from dmc.io import atomic_write

SEARCH_CHECKPOINT = "dmc.search-checkpoint"
"""``last.pt`` / ``best.pt`` of a search run: supernet, alphas, optimisers, RNGs."""
TRAIN_CHECKPOINT = "dmc.train-checkpoint"
"""``last.pt`` / ``best.pt`` of a training run: a network file plus optimiser, scheduler and RNGs."""
NETWORK = "dmc.network"
"""A network file of `dmc compile`: genotype, build arguments, weights."""


def save_checkpoint(path: str | Path, kind: str, state: dict[str, Any], version: int = 1) -> Path:
    """Writes ``state`` tagged with its ``kind`` (e.g. ``dmc.search-checkpoint``) atomically."""
    state = {"format": kind, "version": version, **state}
    return atomic_write(path, lambda tmp: _save(state, tmp))


def _save(state: dict[str, Any], tmp: Path) -> None:
    # serialised in memory, written by Python: a full disk is then an OSError that atomic_write names (torch's own
    # file writer turns it into a bare RuntimeError, "unexpected pos ...")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    tmp.write_bytes(buffer.getbuffer())


def load_torch_file(path: str | Path, what: str, hint: str) -> Any:
    """Reads a file written by ``torch.save`` (dmc's or anyone's) as data, onto the CPU; ``what`` names it in errors,
    ``hint`` says where good ones come from."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such {what}", hint)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign or tampered files raise many types
        raise InvalidInputError(f"{path}: corrupt or unreadable {what} ({type(exc).__name__})", hint) from None


def load_checkpoint(path: str | Path, kinds: tuple[str, ...], what: str, hint: str,
                    version: int = 1) -> dict[str, Any]:
    """Loads a file of one of ``kinds``; ``what`` names it in errors, ``hint`` says where good ones come from."""
    state = load_torch_file(path, what, hint)
    if not isinstance(state, dict) or state.get("format") not in kinds:
        raise InvalidInputError(f"{path}: not a {what}", hint)
    if state.get("version") != version:
        raise InvalidInputError(f"{path}: {what} version {state.get('version')} is not supported",
                                "use the dmc version that wrote it")
    return state
