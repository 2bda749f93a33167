"""A network's latency predicted by a latency table next to its measured latency (real tables and runs, tiny)."""

import dataclasses

import pytest
import torch

from dmc.api import network_from_source
from dmc.compiler import build_network
from dmc.exporters.latency import measure_latency_table
from dmc.exporters.latency_profile import profile_against_table
from dmc.families.chain.genotype import ChainGenotype
from dmc.latency import LatencyTable, LatencyTableError
from dmc.space import load_space

WIDTH, SIZE = 0.25, 32


@pytest.fixture(scope="module")
def table() -> LatencyTable:
    """A torch table of proxyless_s5 at width 0.25 and 32 px, its part overhead fitted on 2 networks."""
    return measure_latency_table("proxyless_s5", width=WIDTH, image_size=SIZE, runtime="torch", repeats=2,
                                 calibration=2)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and exc.value.hint
    return text


def test_the_table_fits_its_overhead_and_costs_a_network_its_fixed_parts_plus_entries(table):
    assert table.part_overhead is not None and table.part_overhead.min_ms <= table.part_overhead.max_ms
    chosen = [ops[-1] for ops in table.candidates]
    costs = table.candidate_costs()
    assert table.network_ms(chosen) == pytest.approx(table.fixed_ms + sum(row[-1] for row in costs), rel=1e-12)
    overhead = table.part_overhead_ms  # fitted on whole networks: counted once, in the fixed parts
    assert table.fixed_ms == pytest.approx(sum(t.median_ms for _, t in table.fixed) - 2 * overhead)
    assert costs[0] == [max(t.median_ms - overhead, 0.0) for t in table.layers[0]]


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_a_network_of_the_space_is_predicted_and_measured(table, runtime):
    if runtime == "onnxruntime":
        onnxruntime = pytest.importorskip("onnxruntime")
        table = dataclasses.replace(table, runtime="onnxruntime", runtime_version=onnxruntime.__version__)
    threads = torch.get_num_threads()
    network = network_from_source("FairNAS_A", width=WIDTH).network  # published, named proxyless_s5, no hash
    report = profile_against_table(network, table, repeats=2)
    assert torch.get_num_threads() == threads  # restored
    assert report["predicted_ms"] == table.network_ms(network.genotype.layers)
    assert report["plain_sum_ms"] == table.plain_network_ms(network.genotype.layers)
    measured = report["measured_ms"]
    assert 0 < measured["min_ms"] <= measured["median_ms"] <= measured["max_ms"]
    assert report["relative_error"] == pytest.approx(report["predicted_ms"] / measured["median_ms"] - 1)
    on = report["measured_on"]
    assert (on["runtime"], on["threads"], on["batch"], on["image_size"], on["repeats"]) == (runtime, 1, 1, SIZE, 2)
    meta = report["table"]
    assert meta["space"] == {"name": "proxyless_s5", "hash": table.space_hash, "width": WIDTH}
    assert meta["measured_on"]["runtime"] == runtime and meta["part_overhead_ms"] == table.part_overhead_ms
    space = load_space("proxyless_s5").with_macro(width=WIDTH)  # a derived genotype records its space's hash
    derived = ChainGenotype(tuple(ops[1] for ops in space.layer_candidates), space.macro, space.name,
                            space.content_hash)
    assert profile_against_table(build_network(derived, width=WIDTH), table, repeats=1)["predicted_ms"] == \
        table.network_ms(derived.layers)


def test_networks_the_table_does_not_cover_are_refused_in_one_line(table):
    cases = [
        (network_from_source("FairNAS_A", width=0.5).network, {}, ("width 0.25, not 0.5", "--width 0.5")),
        (network_from_source("FairNAS_A", width=WIDTH).network, {"image_size": 64},
         ("input size 32, not 64", "--image-size 64")),
        (network_from_source("mobilenet_v2", width=WIDTH).network, {}, ("skeleton", "not the one of proxyless_s5")),
        (network_from_source("FairNAS_A", width=WIDTH, num_classes=10).network, {},
         ("1000-class classifier", "10 classes")),
        (network_from_source("DARTS_V2").network, {}, ("not a chain network", "latency tables cover chain networks")),
    ]
    fbnet = load_space("fbnet_s5").with_macro(width=WIDTH)
    foreign = ChainGenotype(tuple(ops[0] for ops in fbnet.layer_candidates), fbnet.macro, fbnet.name,
                            fbnet.content_hash)
    cases.append((build_network(foreign, width=WIDTH), {},
                  ("comes from space fbnet_s5", "not the table's proxyless_s5")))
    for network, kwargs, phrases in cases:
        with pytest.raises(LatencyTableError) as info:
            profile_against_table(network, table, repeats=1, **kwargs)
        text = _one_line(info)
        assert all(p in text for p in phrases), text
