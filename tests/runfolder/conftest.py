"""Shared by the run-folder tests: search and training settings that run in about a second on the toy dataset
(``toy_data``, tests/conftest.py), a simulated kill after a named write, and the comparison of a resumed run
folder with an uninterrupted one."""

import json

import pytest
import torch

from dmc.runfolder import read_history

# seeds and rates chosen so that the toy runs improve at epoch 1 (best.pt is written at epochs 0 and 1)
SEARCH = dict(space="tiny", epochs=2, batch_size=8, lr=0.2, channels=4, layers=3, seed=2, deterministic=True,
              kernels="reference")
TRAIN = dict(epochs=2, batch_size=8, lr=0.1, channels=4, layers=3, cutout=4, val_portion=0.25, seed=0,
             deterministic=True)


@pytest.fixture(scope="session")
def search_settings(toy_data):
    """A two-epoch search of the tiny space on the toy data (two steps per epoch)."""
    return dict(SEARCH, dataset=toy_data)


@pytest.fixture(scope="session")
def train_settings(toy_data):
    """A two-epoch training run of a 3-cell, 4-channel network on the toy data (three steps per epoch)."""
    return dict(TRAIN, dataset=toy_data)


class Killed(Exception):
    """Stands for SIGKILL in-process: nothing of the run is written after it (tests/runfolder/test_sigkill.py
    kills real processes)."""


@pytest.fixture
def kill_after(monkeypatch):
    """``kill_after(label)`` makes the run loop stop right after the run-folder write ``label`` names, once; it
    returns the list of the labels written (``label=None`` only records)."""

    def install(label):
        seen = []

        def written(name):
            seen.append(name)
            if name == label and seen.count(name) == 1:  # once: the resumed run passes it again
                raise Killed(name)

        monkeypatch.setattr("dmc.runfolder.written", written)
        return seen

    install.Killed = Killed
    return install


@pytest.fixture(scope="session")
def assert_same_run():
    """Asserts two run folders hold the same result: history (but wall times), the epochs, counters and
    weights of best.pt and last.pt, and the final file (genotype.json or result.json)."""

    def check(a, b, final):
        strip = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
        assert strip(read_history(a)) == strip(read_history(b))
        for name in ("best.pt", "last.pt"):
            x, y = (torch.load(run / name, weights_only=True) for run in (a, b))
            for key in ("epoch", "best_epoch"):
                assert x[key] == y[key], (name, key)
            assert x["model"].keys() == y["model"].keys()
            for key, value in x["model"].items():
                assert torch.equal(value, y["model"][key]), (name, key)
        assert json.loads((a / final).read_text()) == json.loads((b / final).read_text())

    return check
