"""`dmc derive`: the genotype of a search run at its best, last, or any recorded epoch."""

from __future__ import annotations

from pathlib import Path

import torch

from dmc.derive import derive
from dmc.errors import InvalidInputError
from dmc.genotype import Genotype
from dmc.search.checkpoint import load_search_checkpoint
from dmc.runfolder import read_history
from dmc.search.folder import load_run_space


def derive_run(run_dir: str | Path, checkpoint: str = "best") -> Genotype:
    """Derives from ``best`` or ``last`` (checkpoint alphas) or ``epoch:N`` (alphas recorded in the history)."""
    run_dir = Path(run_dir)
    space = load_run_space(run_dir)
    if checkpoint in ("best", "last"):
        state = load_search_checkpoint(run_dir / f"{checkpoint}.pt")
        if state.get("space_hash") != space.content_hash:
            raise InvalidInputError(f"{run_dir}/{checkpoint}.pt was searched in another space than space.yaml")
        try:
            alphas = {c: state["model"][f"alpha_{c}"] for c in space.cell_types}
        except KeyError as exc:
            raise InvalidInputError(f"{run_dir}/{checkpoint}.pt has no architecture weights ({exc})") from None
        return derive(alphas, space)
    kind, _, value = checkpoint.partition(":")
    if kind != "epoch" or not value.isdigit():
        raise InvalidInputError(f"checkpoint {checkpoint!r} is not understood", "use best, last or epoch:N")
    epoch = int(value)
    history = read_history(run_dir)
    record = next((r for r in history if r["epoch"] == epoch), None)
    if record is None:
        raise InvalidInputError(f"{run_dir}: no record of epoch {epoch}",
                                f"recorded epochs: 0..{len(history) - 1}" if history else "the run has no epochs yet")
    # softmax weights -> log weights: the same softmax, hence the same derivation
    alphas = {}
    for cell, edges in record["alphas"].items():
        width = max(map(len, edges))
        alphas[cell] = torch.tensor([w + [0.0] * (width - len(w)) for w in edges]).clamp_min(1e-30).log()
    return derive(alphas, space)
