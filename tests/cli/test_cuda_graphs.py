"""`--cuda-graphs` on the command line: refused in one line where it cannot run (nothing written), recorded in the
run folder where it runs."""

import json

import pytest

SEARCH = ["search", "tiny", "--epochs", "1", "--batch-size", "8", "--channels", "4", "--layers", "3", "--kernels",
          "reference", "--device", "cpu"]
TRAIN = ["train", "DARTS_V2", "--epochs", "1", "--batch-size", "8", "--channels", "4", "--layers", "3", "--cutout",
         "4", "--device", "cpu"]


@pytest.mark.parametrize("command", [SEARCH, TRAIN], ids=["search", "train"])
def test_cuda_graphs_on_is_refused_on_the_cpu_before_anything_is_written(cli, tmp_path, toy_data, command):
    run = tmp_path / "run"
    result = cli(*command, "--dataset", toy_data, "--out", str(run), "--cuda-graphs", "on")
    assert result.exit_code == 2
    assert result.stderr == ("error: --cuda-graphs on captures the steps as CUDA graphs; this run is on cpu (hint: "
                             "pass --device cuda on a machine with a GPU, or --cuda-graphs off)\n")
    assert not run.exists()


@pytest.mark.parametrize("command", [SEARCH, TRAIN], ids=["search", "train"])
def test_an_unknown_choice_is_one_line(cli, tmp_path, toy_data, command):
    result = cli(*command, "--dataset", toy_data, "--out", str(tmp_path / "run"), "--cuda-graphs", "fast")
    assert result.exit_code == 2 and "cuda_graphs must be one of auto, on, off, static" in result.stderr
    assert result.stderr.count("\n") == 1


def test_static_steps_run_from_the_cli_and_are_recorded(cli, tmp_path, toy_data):
    run = tmp_path / "run"
    result = cli(*SEARCH, "--dataset", toy_data, "--out", str(run), "--cuda-graphs", "static")
    assert result.exit_code == 0, result.output
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["config"]["cuda_graphs"] == "static" and recorded["steps"] == "static"
