"""Searching for a latency budget from the command line (issue 32): a table measured with `dmc latency table`,
a chain search with `--cost latency:LUT`, the history's expected and derived costs (the derived network's cost is
the sum of its table entries), and a table for another width refused before anything is written."""

from dmc.genotype import load_genotype
from dmc.latency import load_latency_table
from dmc.search import read_history

SEARCH = ["search", "proxyless_s5", "--width", "0.25", "--image-size", "32", "--epochs", "2", "--batch-size", "8",
          "--kernels", "reference", "--device", "cpu"]


def test_a_latency_aware_chain_search_from_the_cli(cli, tmp_path, toy_data):
    lut = tmp_path / "lut.json"
    made = cli("latency", "table", "proxyless_s5", "--width", "0.25", "--image-size", "32", "--runtime", "torch",
               "--repeats", "2", "-o", str(lut))
    assert made.exit_code == 0, made.output
    table = load_latency_table(lut)
    run = tmp_path / "run"
    result = cli(*SEARCH, "--dataset", toy_data, "--out", str(run), "--cost", f"latency:{lut}", "--cost-target",
                 str(round(table.fixed_ms * 3, 3)), "--cost-loss", "proxyless-mul")
    assert result.exit_code == 0, result.output
    history = read_history(run)
    assert all(record["cost_unit"] == "ms" and record["expected_cost"] > table.fixed_ms for record in history)
    for record in history:  # each epoch's derived network costs the sum of its entries, to the bit
        assert record["derived_cost"] == table.network_ms(record["genotype"]["layers"])
    genotype = load_genotype(run / "genotype.json")
    assert table.fixed_ms < table.network_ms(genotype.layers) < sum(map(max, table.candidate_costs())) + table.fixed_ms

    # the budgeted derivation: the most probable network costing 95-100% of a target, whatever the strongest cost
    cheapest = table.fixed_ms + sum(map(min, table.candidate_costs()))
    dearest = table.fixed_ms + sum(map(max, table.candidate_costs()))
    for target in (cheapest + 0.3 * (dearest - cheapest), cheapest + 0.8 * (dearest - cheapest)):
        out = tmp_path / f"within-{target:.4f}.json"
        derived = cli("derive", str(run), "--cost-target", f"{target:.4f}", "-o", str(out))
        assert derived.exit_code == 0, derived.output
        assert 0.95 * round(target, 4) <= table.network_ms(load_genotype(out).layers) <= round(target, 4)
    refused = cli("derive", str(run), "--cost-target", f"{cheapest / 2:.4f}")
    assert refused.exit_code == 2 and "no network of the space costs from" in refused.stderr
    assert refused.stderr.count("\n") == 1


def test_a_table_for_another_width_is_refused_before_anything_is_written(cli, tmp_path, toy_data):
    lut = tmp_path / "lut.json"
    assert cli("latency", "table", "proxyless_s5", "--width", "0.25", "--image-size", "32", "--runtime", "torch",
               "--repeats", "1", "-o", str(lut)).exit_code == 0
    run = tmp_path / "run"
    args = [a if a != "0.25" else "0.5" for a in SEARCH]
    result = cli(*args, "--dataset", toy_data, "--out", str(run), "--cost", f"latency:{lut}", "--cost-target", "5")
    assert result.exit_code == 2
    assert "was measured at width 0.25, not 0.5" in result.stderr and result.stderr.count("\n") == 1
    assert not run.exists()
