"""Measuring latency tables for real: both runtimes on tiny chain spaces, resuming, and the refusals."""

import platform

import pytest
import torch

from dmc.errors import SettingError
from dmc.exporters.latency import interleaved_times_ms, measure_latency_table
from dmc.latency import LatencyTableError, load_latency_table
from dmc.space import load_space, space_from_dict
from dmc.version import __version__

TINY = {
    "format": "dmc.space/1", "name": "tiny_chain", "kind": "chain",
    "macro": {"kind": "chain", "activation": "relu6", "stem": {"channels": 8, "stride": 2},
              "first_block": {"channels": 8},
              "stages": [{"channels": 16, "layers": 1, "stride": 2}], "head": {"channels": 32, "dropout": 0.2}},
    "layers": {"candidates": ["mbconv_k3_e3", "mbconv_k5_e6"]},
}


def _check(table, space, width, size, runtime, version):
    sized = space.with_macro(width=width)
    assert (table.space, table.space_hash, table.width, table.image_size) == (space.name, sized.content_hash,
                                                                                width, size)
    assert (table.runtime, table.runtime_version, table.threads, table.batch, table.repeats) == (runtime, version,
                                                                                                   1, 1, 2)
    assert table.cpu and table.cpu != "unknown" or not platform.machine()
    assert table.dmc_version == __version__ and table.complete
    assert [name for name, _ in table.fixed] == ["stem", "first_block", "head"]
    assert table.candidates == sized.layer_candidates
    for _, timing in table.fixed:
        assert 0 < timing.min_ms <= timing.median_ms <= timing.max_ms
    for ops, layer in zip(table.candidates, table.layers):
        assert len(layer) == len(ops) and all(0 < t.min_ms <= t.median_ms <= t.max_ms for t in layer)
    table.check_fits(space, size, width=width)


def test_torch_table_of_a_narrow_s5_space(tmp_path):
    space = load_space("proxyless_s5")
    entries = []
    threads = torch.get_num_threads()
    table = measure_latency_table(space, width=0.25, image_size=32, runtime="torch", repeats=2,
                                  out_path=tmp_path / "lut.json", on_progress=lambda *a: entries.append(a))
    assert torch.get_num_threads() == threads  # restored
    _check(table, space, 0.25, 32, "torch", torch.__version__)
    assert load_latency_table(tmp_path / "lut.json") == table
    total = 3 + sum(len(ops) for ops in table.candidates)
    assert entries[0] == (0, total, None) and [e[0] for e in entries[1:]] == list(range(1, total + 1))
    assert [e[2] for e in entries[1:5]] == ["stem", "first_block", "head", f"layer 0 {table.candidates[0][0]}"]
    assert table.network_ms([ops[0] for ops in table.candidates]) == pytest.approx(
        table.fixed_ms + sum(row[0] for row in table.candidate_costs()))


def test_onnxruntime_table_of_a_tiny_chain_space(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    space = space_from_dict(TINY)
    table = measure_latency_table(space, image_size=16, repeats=2, out_path=tmp_path / "lut.json")
    _check(table, space, 1.0, 16, "onnxruntime", onnxruntime.__version__)
    assert load_latency_table(tmp_path / "lut.json") == table


def test_an_interrupted_measurement_continues_from_the_layers_done(tmp_path):
    space, path = load_space("proxyless_s5"), tmp_path / "lut.json"
    settings = dict(width=0.25, image_size=32, runtime="torch", repeats=2, out_path=path)

    def stop_after_layer_2(done, total, entry):
        if entry is not None and entry.startswith("layer 3 "):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        measure_latency_table(space, on_progress=stop_after_layer_2, **settings)
    partial = load_latency_table(path)
    assert len(partial.layers) == 4 and not partial.complete  # layer 3 was saved before its entries were reported
    with pytest.raises(LatencyTableError, match="partial: 4 of 19"):
        partial.check_fits(space, 32, width=0.25)
    entries = []
    table = measure_latency_table(space, on_progress=lambda *a: entries.append(a), **settings)
    done_before = 3 + sum(len(ops) for ops in partial.candidates[:4])
    assert entries[0][0] == done_before and entries[0][2] is None
    measured = [entry for _, _, entry in entries[1:]]
    assert measured[0].startswith("layer 4 ") and not [e for e in measured if not e.startswith("layer ")]
    assert table.complete and table.fixed == partial.fixed and table.layers[:4] == partial.layers
    assert table.date == partial.date
    again = []
    assert measure_latency_table(space, on_progress=lambda *a: again.append(a), **settings) == table
    assert len(again) == 1  # complete: nothing measured


def test_a_table_for_other_settings_is_not_continued_or_overwritten(tmp_path):
    space, path = load_space("proxyless_s5"), tmp_path / "lut.json"

    def stop(done, total, entry):
        if entry == "head":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        measure_latency_table(space, width=0.25, image_size=32, runtime="torch", repeats=2, out_path=path,
                              on_progress=stop)
    before = path.read_text()
    for change, phrase in (({"threads": 2}, "threads 1, not 2"), ({"image_size": 64}, "image size 32, not 64"),
                           ({"width": 0.5}, "width 0.25, not 0.5")):
        settings = {**dict(width=0.25, image_size=32, runtime="torch", repeats=2), **change}
        with pytest.raises(LatencyTableError) as info:
            measure_latency_table(space, out_path=path, **settings)
        assert f"{path}: holds a partial latency table measured with {phrase}" in str(info.value)
        assert "\n" not in str(info.value)
    path.write_text("{}")
    with pytest.raises(LatencyTableError, match=r"not a dmc latency table .*; it is in the way"):
        measure_latency_table(space, width=0.25, image_size=32, runtime="torch", repeats=2, out_path=path)
    assert path.read_text() == "{}" and before


@pytest.mark.parametrize("settings, phrase", [
    ({"device": "cuda"}, "device cuda: latency tables are measured on the CPU"),
    ({"runtime": "tflite"}, "runtime 'tflite' is unknown"),
    ({"threads": 0}, "threads must be an integer from 1"),
    ({"repeats": 0}, "repeats must be an integer from 1"),
])
def test_bad_settings_are_refused_before_anything_is_measured(tmp_path, settings, phrase):
    with pytest.raises(SettingError, match=phrase):
        measure_latency_table("proxyless_s5", out_path=tmp_path / "lut.json", **settings)
    assert not (tmp_path / "lut.json").exists()


def test_cell_spaces_are_refused():
    with pytest.raises(LatencyTableError, match="latency tables are measured for chain spaces"):
        measure_latency_table("darts_s0")


def test_parts_of_a_layer_run_round_robin():
    calls = []
    runs = [lambda i=i: calls.append(i) for i in range(3)]
    times = interleaved_times_ms(runs, repeats=2, warmup=1)
    assert calls == [0, 1, 2, 0, 1, 2, 1, 2, 0]
    assert [len(t) for t in times] == [2, 2, 2]
