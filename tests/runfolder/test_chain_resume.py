"""A chain-space search (per-layer alphas, `dmc search` of a spec file) stopped after any one of its writes, in the
middle of an epoch, or SIGKILLed in a real process, resumes to the uninterrupted result (issue 14, item 2)."""

import os
import subprocess
import sys

import pytest
import torch

from dmc.runfolder import KILL_AFTER_ENV, SEARCH_RUN, read_history
from dmc.search import SearchConfig, derive_run, search


@pytest.fixture(scope="module")
def settings(chain_spec, toy_data):
    """A two-epoch search of a 2 x 2-layer chain space on the toy data (two steps per epoch)."""
    spec = chain_spec("resume_chain", ["mbconv_k3_e3", "mbconv_k3_e6", "skip"], ["mbconv_k3_e3", "mbconv_k3_e6"])
    return dict(space=spec, dataset=toy_data, epochs=2, batch_size=8, image_size=16, lr=0.1, seed=1,
                deterministic=True)


@pytest.fixture(scope="module")
def straight(tmp_path_factory, settings):
    run = tmp_path_factory.mktemp("straight-chain") / "run"
    search(SearchConfig(**settings), run)
    return run


def assert_same_chain_run(straight, run, assert_same_run):
    assert_same_run(straight, run, "genotype.json")  # history (alphas, genotypes), best/last weights, genotype
    alphas = [SEARCH_RUN.load(r / "last.pt")["model"]["alpha_layers"] for r in (straight, run)]
    assert torch.equal(*alphas) and alphas[0].shape == (4, 3)
    assert derive_run(run, "best").kind == "chain"


def test_a_chain_search_stopped_after_any_write_or_mid_epoch_resumes_to_the_same_result(
        tmp_path, settings, straight, kill_after, assert_same_run):
    seen = kill_after(None)
    search(SearchConfig(**settings), tmp_path / "recorded")
    assert seen[0] == "config.json" and seen[-1] == "genotype.json" and "last.pt@1" in seen
    assert_same_run(straight, tmp_path / "recorded", "genotype.json")  # a seeded chain search is reproducible
    for label in seen:
        run = tmp_path / label.replace("@", "-")
        kill_after(label)
        with pytest.raises(kill_after.Killed):
            search(SearchConfig(**settings), run)
        search(SearchConfig(), run, resume=True)
        assert_same_chain_run(straight, run, assert_same_run)

    class MidEpoch(Exception):
        pass

    def kill_mid_epoch(kind, **info):
        if kind == "step" and (info["epoch"], info["step"]) == (1, 1):
            raise MidEpoch

    with pytest.raises(MidEpoch):
        search(SearchConfig(**settings), tmp_path / "mid", on_event=kill_mid_epoch)
    assert len(read_history(tmp_path / "mid")) == 1
    search(SearchConfig(), tmp_path / "mid", resume=True)
    assert_same_chain_run(straight, tmp_path / "mid", assert_same_run)


def test_a_sigkilled_chain_search_resumes_with_the_cli(tmp_path, settings, straight, cli, assert_same_run):
    run = tmp_path / "run"
    flags = [f"--{k.replace('_', '-')}" + ("" if v is True else f"={v}") for k, v in settings.items() if k != "space"]
    # one thread: on a busy machine OpenMP's spinning threads make these tiny runs 10x slower
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DMC_DEBUG": "1", KILL_AFTER_ENV: "last.pt@0"}
    killed = subprocess.run([sys.executable, "-m", "dmc.cli.main", "search", settings["space"], *flags,
                             "--out", str(run)], env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert [r["epoch"] for r in read_history(run)] == [0] and not (run / "genotype.json").exists()
    resumed = cli("search", "--resume", str(run))
    assert resumed.exit_code == 0, resumed.output
    assert_same_chain_run(straight, run, assert_same_run)
