"""P-DARTS (and, with the auxiliary skip, P-DARTS-): progressive stages of search on deeper supernets, each
pruning every edge's candidates to the strongest for the next (Chen et al., 2019; DARTS- section 4.3, Table 4).

A P-DARTS run folder holds ``config.json`` and ``space.yaml`` (the space as given), one ordinary search run
folder per stage (``stage-<i>/``, whose ``space.yaml`` is that stage's pruned space at its depth) and the final
``genotype.json``. Stage i searches ``stage_layers[i]`` cells for ``epochs`` epochs; the candidates its final
alphas rank highest (``stage_keep[i]`` per edge) are the next stage's. The last stage's final alphas give the
genotype, with P-DARTS's optional limit on the normal cell's skip connections (``max_skips``). Resume continues
the unfinished stage; finished stages are not rerun.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from dmc.derive import derive
from dmc.families.alpha_weights import edge_weights
from dmc.families.cell.genotype import Genotype
from dmc.families.cell.space import CellSpace
from dmc.io import atomic_write_text
from dmc.runfolder import SEARCH_RUN, RunFolder
from dmc.search.config import SearchConfig
from dmc.space import space_from_dict
from dmc.version import __version__

SKIP = "skip_connect"


def prune_space(space: CellSpace, alphas: dict[str, torch.Tensor], keep: int) -> CellSpace:
    """``space`` with each edge's candidates cut to the ``keep`` strongest by ``alphas`` (ties: the earlier
    candidate), in their original order: P-DARTS's search-space approximation."""
    data = space.to_dict()
    for group in space.cell_types:
        edges = []
        for w, ops in zip(edge_weights(alphas[group].detach().cpu(), space, group), space.candidates(group)):
            strongest = sorted(range(len(ops)), key=lambda k: (-w[k].item(), k))[:keep]
            edges.append([ops[k] for k in sorted(strongest)])
        data["cell"][group] = {"edges": edges}
    data["name"] = space.name
    pruned = space_from_dict(data, f"{space.name} pruned to {keep} candidates per edge")
    assert isinstance(pruned, CellSpace), "a cell space's data, pruned, is a cell space"
    return pruned


def limit_skips(alphas: dict[str, torch.Tensor], space: CellSpace, max_skips: int | None) -> Genotype:
    """The genotype of ``alphas``; with ``max_skips``, P-DARTS's prior: while the normal cell keeps more skip
    connections, the weakest of them is struck from its edge's candidates and the cell derived again."""
    alphas = {g: a.detach().cpu().clone() for g, a in alphas.items()}
    genotype = _derive_cell(alphas, space)
    while max_skips is not None and sum(op == SKIP for node in genotype.normal.nodes for op, _ in node) > max_skips:
        weights = edge_weights(alphas["normal"], space, "normal")
        chosen = _chosen_edges(genotype, space)
        skips = [(weights[e][space.candidates("normal")[e].index(SKIP)].item(), e) for e, op in chosen if op == SKIP]
        _, weakest = min(skips)
        alphas["normal"][weakest, space.candidates("normal")[weakest].index(SKIP)] = float("-inf")
        genotype = _derive_cell(alphas, space)
    return genotype


def _derive_cell(alphas: dict[str, torch.Tensor], space: CellSpace) -> Genotype:
    genotype = derive(alphas, space)
    assert isinstance(genotype, Genotype), "a cell space derives a cell genotype"
    return genotype


def _chosen_edges(genotype: Genotype, space: CellSpace) -> list[tuple[int, str]]:
    """(edge index, op) of every edge the normal cell keeps."""
    chosen, first = [], 0
    for node, inputs in zip(genotype.normal.nodes, space.node_inputs):
        chosen += [(first + inputs.index(j), op) for op, j in node]
        first += len(inputs)
    return chosen


def stage_config(config: SearchConfig, stage: int, space_file: Path) -> SearchConfig:
    """Stage ``stage``'s settings: an ordinary search of the stage's space at its depth and skip dropout."""
    data = {**config.to_dict(), "method": "darts", "space": str(space_file), "layers": config.stage_layers[stage],
            "skip_dropout": config.skip_dropout[stage: stage + 1], "max_skips": None}
    return SearchConfig.from_dict(data, f"stage {stage} settings")


def progressive_search(config: SearchConfig, folder: RunFolder, space: CellSpace, process,
                       search: Callable[..., object], on_event=None) -> tuple[Genotype, list]:
    """Runs (or continues) the stages into ``folder`` (see the module docstring); ``search`` runs one stage.
    Returns the final genotype and the stages' results."""
    status = (lambda message: on_event("status", message=message)) if on_event else (lambda message: None)
    process.on_main(lambda: folder.write_config({"config": config.to_dict(), "space": space.name,
                                                 "space_hash": space.content_hash, "stages": config.stages,
                                                 "world_size": process.world_size, "dmc_version": __version__}))
    results, current = [], space
    for stage, layers in enumerate(config.stage_layers):
        stage_dir = folder.path / f"stage-{stage}"
        space_file = folder.path / f"stage-{stage}.space.yaml"
        stage_space = current.with_macro(layers=layers)
        state = process.on_main(_prepare_stage, stage_dir, space_file, stage_space)
        widest = max(len(ops) for g in stage_space.cell_types for ops in stage_space.candidates(g))
        status(f"P-DARTS stage {stage + 1} of {config.stages}: {layers} cells, at most {widest} candidates per edge")
        results.append(search(stage_config(config, stage, space_file), stage_dir, resume=state == "resume",
                              on_event=on_event))
        alphas = _final_alphas(process, stage_dir, stage_space)
        if stage + 1 < config.stages:
            current = prune_space(stage_space, alphas, config.stage_keep[stage])
    genotype = limit_skips(alphas, stage_space, config.max_skips)
    process.on_main(lambda: folder.write_result("genotype.json", genotype.save))
    return genotype, results


def _prepare_stage(stage_dir: Path, space_file: Path, space: CellSpace) -> str:
    """``resume`` when the stage's folder holds a run (finished or not; a finished one resumes to its end at
    once), ``new`` otherwise, after writing the stage's space file."""
    if (stage_dir / "config.json").is_file():
        return "resume"
    atomic_write_text(space_file, yaml.safe_dump(space.to_dict(), sort_keys=False))
    return "new"


def _final_alphas(process, stage_dir: Path, space: CellSpace) -> dict[str, torch.Tensor]:
    state = process.on_main(lambda: SEARCH_RUN.load(stage_dir / "last.pt"))
    return {g: state["model"][f"alpha_{g}"] for g in space.cell_types}

