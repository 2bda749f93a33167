"""`dmc search --method p-darts`: P-DARTS's progressive stages and search-space approximation, its priors as
options (skip dropout, at most M skips), resume across stages."""

import json
import shutil

import pytest
import torch

from dmc.derive import derive
from dmc.errors import InvalidInputError
from dmc.genotype import load_genotype
from dmc.runfolder import SEARCH_RUN
from dmc.search import SearchConfig, search
from dmc.search.progressive import limit_skips, prune_space
from dmc.space import load_space
from dmc.supernet import MixedEdge, auxiliary_edge


def test_pruning_keeps_the_strongest_candidates_of_every_edge_in_their_order():
    space = load_space("darts_s0")
    torch.manual_seed(0)
    alphas = {g: torch.randn(14, 8) for g in ("normal", "reduce")}
    pruned = prune_space(space, alphas, 3)
    for group in ("normal", "reduce"):
        for e, ops in enumerate(pruned.candidates(group)):
            top = alphas[group][e].topk(3).indices.sort().values.tolist()
            assert list(ops) == [space.candidates(group)[e][k] for k in top]
    assert pruned.name == space.name and pruned.macro == space.macro and pruned.content_hash != space.content_hash
    assert prune_space(pruned, {g: torch.zeros(14, 3) for g in alphas}, 3).candidates("normal") == \
        pruned.candidates("normal")


def test_at_most_m_skips_strikes_the_weakest_skips_first():
    space = load_space("darts_s0")
    ops = space.candidates("normal")[0]
    skip, sep = ops.index("skip_connect"), ops.index("sep_conv_3x3")
    alphas = {g: torch.zeros(14, 8) for g in ("normal", "reduce")}
    strengths = {0: 5.0, 1: 4.0, 2: 3.0, 3: 2.5}  # node 0's and node 1's kept edges are all skips
    for e, value in strengths.items():
        alphas["normal"][e, skip] = value
        alphas["normal"][e, sep] = 1.0
    unlimited = limit_skips(alphas, space, None)
    assert unlimited == derive(alphas, space)
    assert sum(op == "skip_connect" for node in unlimited.normal.nodes for op, _ in node) == 4
    limited = limit_skips(alphas, space, 2)
    kept = [(op, j) for node in limited.normal.nodes[:2] for op, j in node]
    assert sum(op == "skip_connect" for op, _ in kept) == 2
    assert ("skip_connect", 0) in kept[:2] and ("skip_connect", 1) in kept[:2]  # the two strongest stay


def test_skip_dropout_drops_identity_skips_in_training_only():
    edge = MixedEdge(["skip_connect", "avg_pool_3x3"], 4, 4, 1, lambda: auxiliary_edge(4, 1, False))
    edge.skip_dropout = 0.5
    x, w = torch.ones(1, 4, 6, 6), torch.tensor([1.0, 0.0])
    torch.manual_seed(3)
    out = edge(x, w, None)
    torch.manual_seed(3)
    assert torch.equal(out, torch.nn.functional.dropout(x, 0.5))
    assert {0.0, 2.0} == set(out.unique().tolist())
    edge.eval()
    assert torch.equal(edge(x, w, None), x)


def _settings(toy_data, **changes):
    return SearchConfig(**{**dict(space="tiny", dataset=toy_data, epochs=1, batch_size=8, channels=4,
                                  method="p-darts", stage_layers=(3, 4), stage_keep=(2,), deterministic=True),
                           **changes})


def test_stages_prune_for_the_next_and_resume_where_they_stopped(toy_data, tmp_path):
    result = search(_settings(toy_data, skip_dropout=(0.3, 0.1), max_skips=1), tmp_path / "run")
    run = result.run_dir
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "genotype.json", "space.yaml", "stage-0",
                                                   "stage-0.space.yaml", "stage-1", "stage-1.space.yaml"]
    stage_configs = [json.loads((run / f"stage-{i}" / "config.json").read_text())["config"] for i in (0, 1)]
    assert [(c["layers"], c["skip_dropout"], c["method"]) for c in stage_configs] == \
        [(3, [0.3], "darts"), (4, [0.1], "darts")]
    first = SEARCH_RUN.load(run / "stage-0" / "last.pt")["model"]
    stage0 = load_space(str(run / "stage-0" / "space.yaml"))
    expected = prune_space(stage0, {g: first[f"alpha_{g}"] for g in ("normal", "reduce")}, 2)
    stage1 = load_space(str(run / "stage-1" / "space.yaml"))
    assert stage1.candidates("normal") == expected.candidates("normal") and stage1.macro.layers == 4
    last = SEARCH_RUN.load(run / "stage-1" / "last.pt")["model"]
    genotype = limit_skips({g: last[f"alpha_{g}"] for g in ("normal", "reduce")}, stage1, 1)
    assert load_genotype(run / "genotype.json") == genotype == result.genotype

    interrupted = tmp_path / "interrupted"
    shutil.copytree(run, interrupted)
    shutil.rmtree(interrupted / "stage-1")
    (interrupted / "genotype.json").unlink()
    resumed = search(SearchConfig(), interrupted, resume=True)
    assert resumed.genotype == result.genotype
    again = SEARCH_RUN.load(interrupted / "stage-1" / "last.pt")["model"]
    for key, value in last.items():
        assert torch.equal(again[key], value), key


def test_p_darts_settings_are_checked_before_anything_is_written(toy_data, tmp_path, chain_spec):
    spec = chain_spec("pd-chain", ["mbconv_k3_e3", "skip"], ["mbconv_k3_e3"])
    cases = [(dict(space=spec), "chain space"), (dict(stage_layers=(3, 2)), "needs at least 3 cells"),
             (dict(stage_keep=(2, 3), stage_layers=(3, 4, 5)), "stage_keep must give one count"),
             (dict(skip_dropout=(0.1,)), "skip_dropout must give one rate")]
    for i, (changes, message) in enumerate(cases):
        with pytest.raises(InvalidInputError, match=message):
            search(_settings(toy_data, **changes), tmp_path / f"bad{i}")
        assert not (tmp_path / f"bad{i}").exists()
