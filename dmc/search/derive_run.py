"""`dmc derive`: the genotype of a search run at its best, last, or any recorded epoch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from dmc.derive import derive
from dmc.errors import InvalidInputError, SettingError
from dmc.families import AnyGenotype, AnySpace
from dmc.families.alpha_weights import edge_weights
from dmc.families.chain.genotype import ChainGenotype
from dmc.families.chain.space import ChainSpace
from dmc.genotype import genotype_from_dict
from dmc.runfolder import SEARCH_RUN, DamagedRunFile, RunFolder, history_path
from dmc.search.budget import most_probable_within
from dmc.search.cost import latency_cost_table
from dmc.search.cost_rules import parse_cost


def derive_run(run_dir: str | Path, checkpoint: str = "best", *, cost_target: float | None = None,
               cost: str | None = None, cost_tolerance: float = 0.05) -> AnyGenotype:
    """Derives from ``best`` or ``last`` (the checkpoint's alphas), or returns the genotype the history
    recorded at the end of epoch N (``epoch:N``).

    With ``cost_target`` (chain spaces, latency tables): instead of every layer's strongest candidate, the most
    probable network under those alphas whose cost lies from ``(1 - cost_tolerance) * cost_target`` to
    ``cost_target`` (:func:`dmc.search.budget.most_probable_within`), priced by ``cost`` (``latency:LUT.json``;
    default: the run's own ``--cost``)."""
    folder = RunFolder(run_dir, SEARCH_RUN)
    space = folder.read_space()
    if cost_target is not None:
        return _derive_within(folder, space, checkpoint, cost_target, cost, cost_tolerance)
    if checkpoint in ("best", "last"):
        alphas, edge_norms = _checkpoint_weights(folder, space, checkpoint)
        return derive(alphas, space, edge_norms)
    record = _epoch_record(folder, checkpoint)
    try:
        genotype = genotype_from_dict(record["genotype"], f"{history_path(folder.path)}: {checkpoint}")
    except InvalidInputError:
        raise DamagedRunFile(f"{history_path(folder.path)}: the record of {checkpoint} is damaged (its genotype)") \
            from None
    if genotype.space_hash != space.content_hash:
        raise DamagedRunFile(f"{history_path(folder.path)}: the genotype of {checkpoint} is not from space.yaml")
    return genotype


def _checkpoint_weights(folder: RunFolder, space: AnySpace, checkpoint: str
                        ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """The architecture weights of checkpoint ``best`` or ``last``, and PC-DARTS runs' edge normalisation (else
    None)."""
    state = folder.load(checkpoint)
    path = folder.path / f"{checkpoint}.pt"
    if state.get("space_hash") != space.content_hash:
        raise InvalidInputError(f"{path} was searched in another space than space.yaml")
    try:
        alphas = {g: state["model"][f"alpha_{g}"] for g in space.alpha_groups}
    except (KeyError, TypeError) as exc:
        raise DamagedRunFile(f"{path}: damaged (no architecture weights {exc})") from None
    norms = {g: state["model"][f"edge_norm_{g}"] for g in space.alpha_groups if f"edge_norm_{g}" in state["model"]}
    return alphas, norms or None


def _epoch_record(folder: RunFolder, checkpoint: str) -> dict[str, Any]:
    """The history's record of ``epoch:N``; refuses other text and epochs not recorded."""
    kind, _, value = checkpoint.partition(":")
    if kind != "epoch" or not (value.isascii() and value.isdigit()):
        raise InvalidInputError(f"checkpoint {checkpoint!r} is not understood", "use best, last or epoch:N")
    epoch = int(value)
    history = folder.history()
    if epoch >= len(history):
        raise InvalidInputError(f"{folder.path}: no record of epoch {epoch}",
                                f"recorded epochs: 0..{len(history) - 1}" if history else "the run has no epochs yet")
    record = history[epoch]
    if not isinstance(record, dict) or not isinstance(record.get("genotype"), dict):
        raise DamagedRunFile(f"{history_path(folder.path)}: the record of epoch {epoch} is damaged (no genotype)")
    return record


def _derive_within(folder: RunFolder, space: AnySpace, checkpoint: str, target: float, cost: str | None,
                   tolerance: float) -> ChainGenotype:
    if not isinstance(space, ChainSpace):
        raise SettingError(f"a cost budget is derived for chain spaces; {space.name} is a cell space",
                           "derive without {cost_target}")
    if not (isinstance(target, (int, float)) and math.isfinite(target) and target > 0):
        raise SettingError(f"{{cost_target}} must be a positive number, got {target!r}")
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance < 1):
        raise SettingError(f"{{cost_tolerance}} must be from 0 to below 1, got {tolerance!r}")
    cost = cost or folder.read_config().get("config", {}).get("cost")
    if cost is None:
        raise SettingError(f"{folder.path} was searched without a cost, so there is no table to price its networks",
                           "give one: {cost} latency:LUT.json")
    kind, path = parse_cost(cost)
    if kind != "latency" or path is None:
        raise SettingError(f"a budget is derived from a latency table; {cost!r} is not one",
                           "give {cost} latency:LUT.json (`dmc latency table` measures one)")
    table = latency_cost_table(path, space)
    if checkpoint in ("best", "last"):
        alphas = _checkpoint_weights(folder, space, checkpoint)[0]["layers"].detach().cpu()
        weights = [w.tolist() for w in edge_weights(alphas, space, "layers")]
    else:
        try:
            weights = [list(map(float, row)) for row in _epoch_record(folder, checkpoint)["alphas"]["layers"]]
        except (KeyError, TypeError, ValueError):
            raise DamagedRunFile(f"{history_path(folder.path)}: the record of {checkpoint} is damaged "
                                 "(no architecture weights)") from None
    if [len(row) for row in weights] != [len(ops) for ops in space.layer_candidates]:
        raise DamagedRunFile(f"{folder.path}: the architecture weights of {checkpoint} do not fit space.yaml")
    chosen = most_probable_within(weights, table.rows["layers"], table.fixed, (1 - tolerance) * target, target)
    layers = tuple(ops[k] for ops, k in zip(space.layer_candidates, chosen))
    return ChainGenotype(layers, space.macro, space.name, space.content_hash)
