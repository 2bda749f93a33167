"""Search and training under torchrun (2 CPU processes, gloo) equal one process on the doubled batch; a run whose
process is killed stops cleanly and resumes to the uninterrupted result; world sizes must match on resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dmc.runfolder import KILL_AFTER_ENV

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
ENV.pop(KILL_AFTER_ENV, None)


FLOAT64_DMC = (str(Path(__file__).with_name("float64_dmc.py")),)
"""The ``dmc`` command computing in float64."""


def run(*args: str, nproc: int = 1, env: dict | None = None, timeout: int = 300,
        program: tuple[str, ...] = ("-m", "dmc")) -> subprocess.CompletedProcess:
    """``dmc ARGS`` (or ``PROGRAM ARGS``) in one process, or under ``torchrun --standalone --nproc-per-node NPROC``."""
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"] if nproc > 1 else []
    return subprocess.run([sys.executable, *launcher, *program, *args], capture_output=True, text=True,
                          timeout=timeout, env={**ENV, **(env or {})})


def checked(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def model_state(run_dir) -> dict:
    return torch.load(run_dir / "last.pt", weights_only=True)["model"]


def history(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def assert_same_network(a: dict, b: dict, rtol: float, atol: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=rtol, atol=atol, msg=key)


def search_args(data: str, out, batch: int) -> list[str]:
    """16 images per half: 2 global batches of 8 per epoch. Batch 4 is the two-process run's, which also recomputes
    its largest edges in backward (where the batch norms' statistics are all-reduced again) while the one-process
    run keeps its activations: the results must still agree."""
    return ["search", "tiny", "--dataset", data, "--epochs", "3", "--batch-size", str(batch), "--image-size", "16",
            "--no-augment", "--device", "cpu", "--sync-bn", "--out", str(out),
            *(["--recompute-edges"] if batch == 4 else [])]


@pytest.fixture(scope="module")
def searches(toy_data, tmp_path_factory):
    """The same search on two processes of batch 4 (recomputing edges) and on one of batch 8 (not)."""
    root = tmp_path_factory.mktemp("searches")
    checked(run(*search_args(toy_data, root / "two", 4), nproc=2))
    checked(run(*search_args(toy_data, root / "one", 8)))
    return root / "two", root / "one"


def test_search_on_two_processes_equals_one_on_the_doubled_batch(searches):
    two, one = searches
    assert_same_network(model_state(two), model_state(one), rtol=1e-4, atol=1e-5)
    a, b = history(two), history(one)
    for ra, rb in zip(a, b, strict=True):
        assert ra["val_acc"] == rb["val_acc"] and ra["train_acc"] == rb["train_acc"]
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-4)
    assert json.loads((two / "genotype.json").read_text()) == json.loads((one / "genotype.json").read_text())
    config = json.loads((two / "config.json").read_text())
    assert config["world_size"] == 2 and config["config"]["sync_bn"] is True
    assert config["config"]["recompute_edges"] is True


def test_search_of_many_steps_on_two_processes_is_one_process_step_for_step_in_float64(tmp_path):
    """Digits at 8x8, 12 steps of 2 x 4 (one process: 8) images: 96 images train the weights, 1341 the alphas.

    In float64 every step of the two runs agrees to rounding: a tolerance of 1e-9 where their sums differ by about
    1e-15 per operation (and grow to about 1e-14 over such a run), while one image more or less, a statistic or a
    gradient not averaged over the processes moves the results by 1e-7 or more. (In float32 the same two runs part
    after a few steps, as one process does on other kernels: see float64_dmc.py.) Both evaluate all 1341 images of
    the architecture half, of which a step sampler would leave one out on two processes."""
    (tmp_path / "halves.yaml").write_text("train_portion: 0.067\n")  # int(0.067 * 1437) = 96 = 12 x 8

    def args(batch: int, out: Path) -> list[str]:
        return ["search", "tiny", "--dataset", "digits", "--config", str(tmp_path / "halves.yaml"), "--epochs", "1",
                "--batch-size", str(batch), "--image-size", "8", "--no-augment", "--device", "cpu", "--sync-bn",
                "--out", str(out)]

    checked(run(*args(4, tmp_path / "two"), nproc=2, program=FLOAT64_DMC))
    checked(run(*args(8, tmp_path / "one"), program=FLOAT64_DMC))
    two, one = model_state(tmp_path / "two"), model_state(tmp_path / "one")
    assert two["alpha_normal"].dtype == torch.float64
    assert_same_network(two, one, rtol=1e-9, atol=1e-12)
    [a], [b] = history(tmp_path / "two"), history(tmp_path / "one")
    assert a["train_acc"] == b["train_acc"] and a["val_acc"] == b["val_acc"]
    for key in ("train_loss", "val_loss"):
        assert a[key] == pytest.approx(b[key], rel=1e-9)
    assert json.loads((tmp_path / "two" / "genotype.json").read_text()) == \
        json.loads((tmp_path / "one" / "genotype.json").read_text())


def test_killed_process_stops_the_run_which_resumes_to_the_uninterrupted_result(searches, toy_data, tmp_path):
    two, _ = searches
    out = tmp_path / "killed"
    killed = run(*search_args(toy_data, out, 4), "--nproc", "2", env={KILL_AFTER_ENV: "rank1:step@1.1"},
                 timeout=120)
    assert killed.returncode != 0
    assert "process 1 of 2 was killed by SIGKILL" in killed.stderr
    assert "Traceback" not in killed.stderr
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 1  # epoch 0 is complete
    assert len(history(out)) == 1

    refused = run("search", "--resume", str(out))
    assert refused.returncode == 2
    assert "was run on 2 process(es), this resume on 1" in refused.stderr

    checked(run("search", "--resume", str(out), "--nproc", "2"))
    a, b = model_state(out), model_state(two)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["val_acc"] for r in history(out)] == [r["val_acc"] for r in history(two)]


def test_train_on_two_processes_equals_one_on_the_doubled_batch(toy_data, tmp_path):
    def args(batch: int, out) -> list[str]:
        # 24 training images after the 25% held out: 3 global batches of 8
        return ["train", "DARTS_V2", "--dataset", toy_data, "--epochs", "2", "--batch-size", str(batch),
                "--channels", "4", "--layers", "3", "--image-size", "16", "--no-augment", "--cutout", "0",
                "--drop-path", "0", "--no-auxiliary", "--val-portion", "0.25", "--device", "cpu", "--sync-bn",
                "--out", str(out)]

    checked(run(*args(4, tmp_path / "two"), nproc=2))
    checked(run(*args(8, tmp_path / "one")))
    assert_same_network(model_state(tmp_path / "two"), model_state(tmp_path / "one"), rtol=1e-4, atol=1e-5)
    a, b = history(tmp_path / "two"), history(tmp_path / "one")
    for ra, rb in zip(a, b, strict=True):
        for key in ("train_acc", "val_acc", "test_acc"):
            assert ra[key] == rb[key]
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-4)


def test_an_input_error_of_every_process_is_reported_once(tmp_path):
    result = run("search", "tiny", "--dataset", f"folder:{tmp_path / 'missing'}", "--out", str(tmp_path / "run"),
                 "--nproc", "2", timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("error:") == 1 and "no such folder" in result.stderr
    assert "Traceback" not in result.stderr
