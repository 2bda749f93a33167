"""The latency table's file format, its refusals, and the costs it gives (hand-made tables, no measurement)."""

import dataclasses
import json

import pytest

from dmc.families.chain.genotype import ChainGenotype
from dmc.latency import LatencyTable, LatencyTableError, Timing, load_latency_table
from dmc.space import load_space

WIDTH, SIZE = 0.25, 32


def _table(layers: int | None = None, space_name: str = "proxyless_s5") -> LatencyTable:
    space = load_space(space_name).with_macro(width=WIDTH)
    timings = tuple(tuple(Timing.from_times([0.1 * (i + 1) + 0.01 * k, 0.1 * (i + 1) + 0.01 * k + 0.02])
                          for k in range(len(ops))) for i, ops in enumerate(space.layer_candidates))
    fixed = (("stem", Timing.from_times([0.5, 0.6, 0.7])), ("first_block", Timing.from_times([0.25])),
             ("head", Timing.from_times([1.0, 1.5])))
    return LatencyTable(space=space.name, space_hash=space.content_hash, width=WIDTH, image_size=SIZE, batch=1,
                        num_classes=1000, cpu="test cpu", runtime="onnxruntime", runtime_version="1.0", threads=1,
                        repeats=2, dmc_version="0", date="2025-01-01T00:00:00+00:00", fixed=fixed,
                        candidates=space.layer_candidates, layers=timings[:layers])


def _one_line_error(path) -> str:
    with pytest.raises(LatencyTableError) as info:
        load_latency_table(path)
    text = str(info.value)
    assert "\n" not in text and str(path) in text
    return text


def test_a_table_round_trips_through_its_file(tmp_path):
    table = _table()
    path = table.save(tmp_path / "lut.json")
    assert load_latency_table(path) == table
    data = json.loads(path.read_text())
    assert data["format"] == "dmc.latency_table" and data["version"] == 1
    assert data["space"] == {"name": "proxyless_s5", "hash": table.space_hash, "width": WIDTH}
    assert list(data["layers"][0]) == list(table.candidates[0])  # entries in alpha's column order
    partial = _table(layers=3)
    assert not partial.complete and load_latency_table(partial.save(tmp_path / "part.json")) == partial


def test_timings_keep_the_median_and_the_spread():
    timing = Timing.from_times([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (timing.median_ms, timing.spread_ms, timing.q1_ms, timing.q3_ms, timing.iqr_ms) == (3.0, (1.0, 5.0),
                                                                                                2.0, 4.0, 2.0)


def test_corrupt_foreign_and_newer_files_are_refused_in_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"format": "dmc.latency_table", "version": ')
    assert "invalid JSON" in _one_line_error(corrupt)
    foreign = tmp_path / "genotype.json"
    foreign.write_text(json.dumps({"format": "dmc.genotype", "version": 1}))
    assert "not a dmc latency table" in _one_line_error(foreign)
    data = _table().to_dict()
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**data, "version": 2}))
    assert "version 2 is not supported" in _one_line_error(newer)
    assert "cannot read latency table" in _one_line_error(tmp_path / "missing.json")


@pytest.mark.parametrize("change, field", [
    (lambda d: d["layers"][2][d["candidates"][2][0]].update(median_ms=-1.0), "layers[2]"),
    (lambda d: d["layers"][0].pop(d["candidates"][0][1]), "layers[0]"),
    (lambda d: d["fixed"]["head"].update(min_ms=9.0), "fixed.head"),
    (lambda d: d["measured_on"].update(runtime="tflite"), "measured_on.runtime"),
    (lambda d: d["input"].update(image_size=0), "input.image_size"),
    (lambda d: d["fixed"].pop("stem"), "fixed"),
    (lambda d: d.update(extra=1), "extra"),
])
def test_malformed_fields_are_named(tmp_path, change, field):
    data = _table().to_dict()
    change(data)
    path = tmp_path / "lut.json"
    path.write_text(json.dumps(data))
    assert f": {field}" in _one_line_error(path)


def test_a_table_for_another_space_width_or_input_size_is_refused_naming_both_values(tmp_path):
    table = _table()
    space = load_space("proxyless_s5")
    table.check_fits(space.with_macro(width=WIDTH), SIZE)
    table.check_fits(space, SIZE, width=WIDTH)
    cases = [
        ((space.with_macro(width=0.5), SIZE), ("width 0.25, not 0.5", "--width 0.5")),
        ((load_space("fbnet_s5").with_macro(width=WIDTH), SIZE),
         (f"space proxyless_s5 (hash {table.space_hash})", "not fbnet_s5 (hash", "dmc latency table fbnet_s5")),
        ((space.with_macro(width=WIDTH), 224), ("input size 32, not 224", "--image-size 224")),
    ]
    for args, phrases in cases:
        with pytest.raises(LatencyTableError) as info:
            load_latency_table(table.save(tmp_path / "lut.json")).check_fits(*args)
        text = str(info.value)
        assert "\n" not in text and text.startswith(f"{tmp_path / 'lut.json'}: ") and all(p in text for p in phrases)
    with pytest.raises(LatencyTableError, match="partial: 3 of 19 layers"):
        _table(layers=3).check_fits(space, SIZE, width=WIDTH)


def test_a_derived_network_costs_the_fixed_parts_plus_its_entries():
    table = _table()
    space = load_space("proxyless_s5").with_macro(width=WIDTH)
    chosen = [ops[i % len(ops)] for i, ops in enumerate(space.layer_candidates)]
    genotype = ChainGenotype(tuple(chosen), space.macro, space.name, space.content_hash)
    expected = (0.6 + 0.25 + 1.25) + sum(0.1 * (i + 1) + 0.01 * (i % len(ops)) + 0.01
                                          for i, ops in enumerate(space.layer_candidates))
    assert table.fixed_ms == pytest.approx(2.1)
    assert table.network_ms(genotype.layers) == pytest.approx(expected)
    costs = table.candidate_costs()
    assert [len(row) for row in costs] == [len(ops) for ops in space.layer_candidates]
    assert table.network_ms(chosen) == pytest.approx(
        table.fixed_ms + sum(row[ops.index(op)] for row, ops, op in zip(costs, space.layer_candidates, chosen)))
    with pytest.raises(LatencyTableError, match="layer 0: 'skip' is not one of its candidates"):
        table.network_ms(["skip", *chosen[1:]])
    with pytest.raises(LatencyTableError, match="18 operations for the 19 layers"):
        table.network_ms(chosen[1:])
    with pytest.raises(LatencyTableError, match="partial"):
        _table(layers=5).network_ms(chosen)


def _with_overhead(overhead_ms: float) -> LatencyTable:
    return dataclasses.replace(_table(), part_overhead=Timing.from_times([overhead_ms - 0.01, overhead_ms,
                                                                          overhead_ms + 0.02]))


def test_the_part_overhead_is_counted_once_and_folded_into_the_fixed_parts_and_the_entries(tmp_path):
    plain, table = _table(), _with_overhead(0.05)
    space = load_space("proxyless_s5").with_macro(width=WIDTH)
    chosen = [ops[-1] for ops in space.layer_candidates]
    parts = len(table.fixed) + len(chosen)
    assert table.part_overhead_ms == 0.05 and plain.part_overhead_ms == 0.0
    assert table.fixed_ms == pytest.approx(plain.fixed_ms - 2 * 0.05)  # three fixed parts: the overhead once
    assert [c for row in table.candidate_costs() for c in row] == pytest.approx(
        [c - 0.05 for row in plain.candidate_costs() for c in row])
    assert table.plain_network_ms(chosen) == pytest.approx(plain.network_ms(chosen))
    assert table.network_ms(chosen) == pytest.approx(plain.network_ms(chosen) - (parts - 1) * 0.05)
    costs = table.candidate_costs()  # what the search's CostTable reads: fixed + sum of entries, exactly
    total = table.fixed_ms  # summed as the search's CostTable.of_choice sums: to the bit
    for row, ops, op in zip(costs, space.layer_candidates, chosen):
        total += row[ops.index(op)]
    assert table.network_ms(chosen) == total
    assert min(min(row) for row in _with_overhead(5.0).candidate_costs()) == 0.0  # an entry never goes negative
    slower = _with_overhead(-0.02)  # whole networks slower than their parts (PyTorch eager): a negative overhead
    assert slower.network_ms(chosen) == pytest.approx(plain.network_ms(chosen) + (parts - 1) * 0.02)
    for each in (table, slower):
        path = each.save(tmp_path / "lut.json")
        assert load_latency_table(path) == each and "part_overhead" in json.loads(path.read_text())


def test_a_table_without_the_part_overhead_loads_with_overhead_0(tmp_path):
    data = _table().to_dict()
    assert "part_overhead" not in data  # the file of a table measured before the overhead existed
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    old = load_latency_table(path)
    assert old.part_overhead is None and old.part_overhead_ms == 0.0
    chosen = [ops[0] for ops in old.candidates]
    assert old.network_ms(chosen) == old.plain_network_ms(chosen) == pytest.approx(
        sum(t.median_ms for _, t in old.fixed) + sum(layer[0].median_ms for layer in old.layers))
    broken = {**_with_overhead(0.05).to_dict()}
    broken["part_overhead"] = {**broken["part_overhead"], "median_ms": "fast"}
    path.write_text(json.dumps(broken))
    assert ": part_overhead.median_ms: expected a number" in _one_line_error(path)
