"""`dmc export` refuses what it cannot prove: an output that is its own input, no parity inputs, an opset
the exporter does not write."""

import json
import os

import onnx
import pytest

from dmc.compiler import build_network, save_network
from dmc.errors import DmcError, InvalidInputError
from dmc.exporters import onnx as exporter
from dmc.exporters.onnx import export_onnx
from dmc.genotype import published_genotypes

DARTS_V2 = published_genotypes()["DARTS_V2"]


@pytest.fixture
def network_file(tmp_path):
    return save_network(build_network(DARTS_V2, channels=4, layers=3), tmp_path / "best.pt")


def _one_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr


@pytest.mark.parametrize("kind", ["same", "dotted", "symlink", "hardlink", "source-is-link"])
def test_an_output_that_is_the_input_is_refused(cli, network_file, kind):
    before = network_file.read_bytes()
    source, out = network_file, network_file
    if kind == "dotted":
        out = network_file.parent / "." / network_file.name
    elif kind == "symlink":
        out = network_file.with_name("link.onnx")
        out.symlink_to(network_file)
    elif kind == "hardlink":
        out = network_file.with_name("hard.onnx")
        os.link(network_file, out)
    elif kind == "source-is-link":
        source = network_file.with_name("link.pt")
        source.symlink_to(network_file)
    assert "would overwrite an input" in _one_line(cli("export", str(source), "--onnx", str(out)))
    assert network_file.read_bytes() == before


def test_a_report_that_would_overwrite_the_input_is_refused(cli, tmp_path):
    genotype = tmp_path / "g.onnx.json"
    genotype.write_text(json.dumps(DARTS_V2.to_dict()))
    before = genotype.read_text()
    result = cli("export", str(genotype), "--channels", "4", "--layers", "3", "--onnx", str(tmp_path / "g.onnx"))
    assert "g.onnx.json would overwrite an input" in _one_line(result)
    assert genotype.read_text() == before and not (tmp_path / "g.onnx").exists()


def test_a_parity_check_without_inputs_is_refused(cli, network_file, tmp_path):
    out = tmp_path / "m.onnx"
    message = _one_line(cli("export", str(network_file), "--onnx", str(out), "--runs", "0"))
    assert "at least 1 random input" in message and "(hint: pass --runs 1 or more, or --no-check" in message
    assert not out.exists() and not exporter.report_path(out).exists()
    with pytest.raises(InvalidInputError, match=r"runs=-1.*\(hint: pass runs 1 or more, or check=False to skip"):
        export_onnx(build_network(DARTS_V2, channels=4, layers=3), out, runs=-1)


@pytest.mark.parametrize("opset", ["1", "17", "99"])
def test_an_opset_the_exporter_does_not_write_is_refused(cli, network_file, tmp_path, opset):
    out = tmp_path / "m.onnx"
    message = _one_line(cli("export", str(network_file), "--onnx", str(out), "--opset", opset))
    opsets = exporter.supported_opsets()
    assert f"opset {opset} is not supported" in message and f"from {opsets.start} to {opsets.stop - 1}" in message
    assert not out.exists()


def test_the_requested_opset_is_the_one_written(network_file, tmp_path):
    from dmc.compiler import load_network

    requested = exporter.supported_opsets().start + 1  # not the exporter's default
    report = export_onnx(load_network(network_file), tmp_path / "m.onnx", opset=requested, runs=1)
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert report["opset"] == requested
    assert [i.version for i in model.opset_import if i.domain in ("", "ai.onnx")] == [requested]


def test_an_exporter_that_ignores_the_opset_writes_nothing(cli, network_file, monkeypatch, tmp_path):
    # below torchlib's opset the exporter falls back to its own when the conversion fails; pretend dmc allowed it
    floor = exporter.supported_opsets().start
    monkeypatch.setattr(exporter, "supported_opsets", lambda: range(1, floor + 1))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DmcError, match=f"wrote opset {floor} instead of the requested 1") as info:
        export_onnx(build_network(DARTS_V2, channels=4, layers=3), out / "m.onnx", opset=1, runs=1)
    assert list(out.iterdir()) == []
    assert info.value.exit_code == 1 and info.value.hint == "leave opset at the default, or choose another opset"
    result = cli("export", str(network_file), "--onnx", str(out / "m.onnx"), "--opset", "1")
    assert result.exit_code == 1 and "(hint: leave --opset at the default" in result.stderr
