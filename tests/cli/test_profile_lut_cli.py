"""`dmc profile NET --lut TABLE [--json]` through the CLI (a real torch table, tiny)."""

import json

import pytest

from dmc.exporters.latency import measure_latency_table
from dmc.latency import load_latency_table

NARROW = ("--width", "0.25", "--repeats", "2")


@pytest.fixture(scope="module")
def lut(tmp_path_factory):
    path = tmp_path_factory.mktemp("lut") / "lut.json"
    measure_latency_table("proxyless_s5", width=0.25, image_size=32, runtime="torch", repeats=2, out_path=path,
                          calibration=2)
    return path


def test_profile_lut_prints_predicted_next_to_measured(cli, lut):
    result = cli("profile", "FairNAS_A", "--lut", str(lut), *NARROW)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "predicted" in out and "measured" in out and "error" in out and "(predicted / measured - 1)" in out
    assert f"{lut}: proxyless_s5 at width 0.25, 32x32, batch 1, torch" in " ".join(out.split())
    assert "parameters" not in out  # not the plain profile


def test_profile_lut_json_is_one_object(cli, lut):
    result = cli("profile", "FairNAS_A", "--lut", str(lut), "--json", *NARROW)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    table = load_latency_table(lut)
    assert report["predicted_ms"] == table.network_ms(report["layers"])
    assert report["measured_ms"]["median_ms"] > 0 and set(report["measured_ms"]) == {
        "median_ms", "min_ms", "q1_ms", "q3_ms", "max_ms"}
    assert report["relative_error"] == pytest.approx(report["predicted_ms"] / report["measured_ms"]["median_ms"] - 1)
    assert report["table"]["source"] == str(lut) and report["table"]["measured_on"]["runtime"] == "torch"


def test_profile_lut_refuses_a_network_of_another_space_or_width_in_one_line(cli, lut):
    for args, phrase in ((("mobilenet_v2", "--width", "0.25"), "not the one of proxyless_s5"),
                         (("FairNAS_A", "--width", "0.5"), "measured at width 0.25, not 0.5")):
        result = cli("profile", *args, "--lut", str(lut), "--repeats", "1")
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], result.stderr
        assert "Traceback" not in result.output


def test_profile_json_needs_a_table(cli):
    result = cli("profile", "FairNAS_A", "--json")
    assert result.exit_code == 2 and "--json prints the comparison with a latency table" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
