"""`dmc search --method pc-darts`: PC-DARTS (and, with the auxiliary skip, PC-DARTS-) end to end."""

import json

from dmc.derive import derive
from dmc.runfolder import SEARCH_RUN
from dmc.search import derive_run
from dmc.space import load_space


def test_cli_pc_darts_search_derives_with_the_edge_weights_and_warms_up(cli, tmp_path, toy_data):
    run = tmp_path / "run"
    result = cli("search", "tiny", "--dataset", toy_data, "--epochs", "2", "--batch-size", "8", "--channels", "4",
                 "--layers", "3", "--method", "pc-darts", "--partial-channels", "2", "--no-channel-shuffle",
                 "--arch-warmup", "1", "--out", str(run))
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["method"], config["partial_channels"], config["channel_shuffle"]) == ("pc-darts", 2, False)
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    for record in history:
        for weights in record["edge_norm"].values():
            assert len(weights) == 5 and abs(sum(weights[:2]) - 1) < 1e-6 and abs(sum(weights[2:]) - 1) < 1e-6

    state = SEARCH_RUN.load(run / "last.pt")
    model = state["model"]
    space = load_space(str(run / "space.yaml"))
    expected = derive({g: model[f"alpha_{g}"] for g in ("normal", "reduce")}, space,
                      {g: model[f"edge_norm_{g}"] for g in ("normal", "reduce")})
    assert derive_run(run, "last") == expected
    assert history[-1]["genotype"] == expected.to_dict()

    # 32 toy images, half of them per side, batch 8: two architecture steps, all in epoch 1 (epoch 0 warms up)
    steps = {int(s["step"]) for s in state["a_opt"]["state"].values()}
    assert steps == {2}
    assert model["edge_norm_normal"].shape == (5,) and model["blocks.0.edges.0.ops.2.0.1.weight"].shape[1] == 1


def test_cli_refuses_pc_darts_where_it_does_not_apply(cli, tmp_path, toy_data, chain_spec):
    spec = chain_spec("pc-chain", ["mbconv_k3_e3", "skip"], ["mbconv_k3_e3"])
    chain = cli("search", spec, "--dataset", toy_data, "--method", "pc-darts", "--out", str(tmp_path / "a"))
    assert chain.exit_code == 2 and "chain space" in chain.stderr and "--method darts" in chain.stderr
    split = cli("search", "tiny", "--dataset", toy_data, "--channels", "4", "--method", "pc-darts",
                "--partial-channels", "3", "--out", str(tmp_path / "b"))
    assert split.exit_code == 2 and "does not split into 3" in split.stderr
    unknown = cli("search", "tiny", "--method", "p-darts-x", "--out", str(tmp_path / "c"))
    assert unknown.exit_code == 2 and "method must be one of darts, pc-darts" in unknown.stderr
