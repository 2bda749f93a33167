"""`dmc latency table` through the CLI."""

import json

from dmc.latency import load_latency_table
from dmc.space import load_space

NARROW = ("--width", "0.25", "--image-size", "32", "--repeats", "2", "--runtime", "torch")


def test_latency_table_writes_the_table_and_says_what_it_measured(cli, tmp_path):
    out = tmp_path / "lut.json"
    result = cli("latency", "table", "proxyless_s5", "-o", str(out), *NARROW)
    assert result.exit_code == 0, result.output
    table = load_latency_table(out)
    table.check_fits(load_space("proxyless_s5"), 32, width=0.25)
    assert (table.runtime, table.threads, table.batch, table.repeats) == ("torch", 1, 1, 2)
    assert f"wrote {out}" in result.stdout and "19 layers" in result.stdout and "torch" in result.stdout
    again = cli("latency", "table", "proxyless_s5", "-o", str(out), *NARROW)
    assert again.exit_code == 0 and "already complete" in again.stdout
    assert load_latency_table(out) == table


def test_latency_table_refuses_other_devices_and_settings_in_one_line(cli, tmp_path):
    out = tmp_path / "lut.json"
    for args, phrase in ((("--device", "cuda"), "--device cuda: latency tables are measured on the CPU"),
                         (("--threads", "0"), "--threads must be an integer from 1"),
                         (("--runtime", "tflite"), "--runtime 'tflite' is unknown")):
        result = cli("latency", "table", "proxyless_s5", "-o", str(out), *args)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], result.stderr
        assert "Traceback" not in result.output and not out.exists()
    cell = cli("latency", "table", "darts_s0", "-o", str(out))
    assert cell.exit_code == 2 and "measured for chain spaces" in cell.stderr
    out.write_text(json.dumps({"format": "dmc.latency_table", "version": 9}))
    newer = cli("latency", "table", "proxyless_s5", "-o", str(out), *NARROW)
    assert newer.exit_code == 2 and "version 9 is not supported" in newer.stderr
