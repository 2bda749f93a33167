"""`dmc derive`: the genotype of a search run at its best, last, or any recorded epoch."""

from __future__ import annotations

from pathlib import Path

from dmc.derive import derive
from dmc.errors import InvalidInputError
from dmc.families import AnyGenotype
from dmc.genotype import genotype_from_dict
from dmc.runfolder import SEARCH_RUN, DamagedRunFile, RunFolder, history_path


def derive_run(run_dir: str | Path, checkpoint: str = "best") -> AnyGenotype:
    """Derives from ``best`` or ``last`` (the checkpoint's alphas), or returns the genotype the history
    recorded at the end of epoch N (``epoch:N``)."""
    folder = RunFolder(run_dir, SEARCH_RUN)
    space = folder.read_space()
    if checkpoint in ("best", "last"):
        state = folder.load(checkpoint)
        path = folder.path / f"{checkpoint}.pt"
        if state.get("space_hash") != space.content_hash:
            raise InvalidInputError(f"{path} was searched in another space than space.yaml")
        try:
            alphas = {g: state["model"][f"alpha_{g}"] for g in space.alpha_groups}
        except (KeyError, TypeError) as exc:
            raise DamagedRunFile(f"{path}: damaged (no architecture weights {exc})") from None
        edge_norms = {g: state["model"][f"edge_norm_{g}"] for g in space.alpha_groups
                      if f"edge_norm_{g}" in state["model"]}  # PC-DARTS runs
        return derive(alphas, space, edge_norms or None)
    kind, _, value = checkpoint.partition(":")
    if kind != "epoch" or not (value.isascii() and value.isdigit()):
        raise InvalidInputError(f"checkpoint {checkpoint!r} is not understood", "use best, last or epoch:N")
    epoch = int(value)
    history = folder.history()
    if epoch >= len(history):
        raise InvalidInputError(f"{folder.path}: no record of epoch {epoch}",
                                f"recorded epochs: 0..{len(history) - 1}" if history else "the run has no epochs yet")
    try:
        genotype = genotype_from_dict(history[epoch]["genotype"], f"{history_path(folder.path)}: epoch {epoch}")
    except (KeyError, TypeError, InvalidInputError):
        raise DamagedRunFile(f"{history_path(folder.path)}: the record of epoch {epoch} is damaged "
                             "(no genotype)") from None
    if genotype.space_hash != space.content_hash:
        raise DamagedRunFile(f"{history_path(folder.path)}: the genotype of epoch {epoch} is not from space.yaml")
    return genotype
