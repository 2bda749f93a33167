"""NaN and infinity (issue 12, item 5): refused as settings; a run whose loss becomes non-finite stops with one
line naming the epoch and step, and keeps its last good checkpoint; no JSON file ever holds NaN."""

import json

import pytest
import torch.nn.functional as F

from dmc.errors import DmcError, InvalidInputError
from dmc.genotype import published_genotypes
from dmc.runfolder import SEARCH_RUN, read_history
from dmc.search import SearchConfig, search
from dmc.search.space_settings import load_search_config
from dmc.train import TrainConfig, load_train_checkpoint, train


class _NanLossFrom:
    """Stands in for ``torch.nn.functional`` in a run loop: its cross-entropy turns NaN from the n-th call on."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __getattr__(self, name):
        return getattr(F, name)

    def cross_entropy(self, *args, **kwargs):
        self.calls += 1
        loss = F.cross_entropy(*args, **kwargs)
        return loss * float("nan") if self.calls >= self.n else loss


def _assert_strict_json(path, lines=False):
    """Standard JSON only: Python's json would write and read NaN and Infinity."""
    for text in path.read_text().splitlines() if lines else [path.read_text()]:
        json.loads(text, parse_constant=lambda name: pytest.fail(f"{path} holds {name}"))


def test_a_search_whose_loss_becomes_nan_stops_and_keeps_the_last_good_epoch(tmp_path, search_settings,
                                                                             monkeypatch):
    monkeypatch.setattr("dmc.search.run.F", _NanLossFrom(4))  # two steps per epoch: epoch 1, step 2
    with pytest.raises(DmcError, match=r"the training loss became nan at epoch 1, step 2: .*last.pt keeps epoch 0"):
        search(SearchConfig(**search_settings), tmp_path / "run")
    assert SEARCH_RUN.load(tmp_path / "run" / "last.pt")["epoch"] == 1
    assert [r["epoch"] for r in read_history(tmp_path / "run")] == [0]
    assert not (tmp_path / "run" / "genotype.json").exists()
    _assert_strict_json(tmp_path / "run" / "config.json")
    _assert_strict_json(tmp_path / "run" / "history.jsonl", lines=True)


def test_a_training_run_whose_loss_becomes_nan_stops_in_one_line(tmp_path, train_settings, monkeypatch, cli):
    # three steps per epoch, two losses a step (auxiliary head): the 9th is epoch 1, step 2
    monkeypatch.setattr("dmc.train.loop.F", _NanLossFrom(9))
    with pytest.raises(DmcError, match=r"loss became nan at epoch 1, step 2") as info:
        train(published_genotypes()["DARTS_V2"], TrainConfig.for_dataset(**train_settings), tmp_path / "run")
    assert info.value.exit_code == 1 and info.value.hint == "lower the learning rate (lr) and start a new run"
    assert load_train_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    assert not (tmp_path / "run" / "result.json").exists()

    monkeypatch.setattr("dmc.train.loop.F", _NanLossFrom(1))
    result = cli("train", "DARTS_V2", "--dataset", train_settings["dataset"], "--epochs", "1", "--channels", "4",
                 "--layers", "3", "--out", str(tmp_path / "cli"))
    assert result.exit_code == 1 and "unexpected" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: the training loss became nan at epoch 0, step 1: the run diverged and stopped (no epoch had "
        "finished) (hint: lower the learning rate (--lr) and start a new run)"]


@pytest.mark.parametrize("flag,value", [("--beta0", "nan"), ("--lr", "inf"), ("--arch-lr", "-inf"),
                                        ("--beta0", "-1")])
def test_non_finite_search_settings_are_refused_before_anything_is_written(cli, tmp_path, flag, value):
    result = cli("search", "tiny", "--epochs", "1", flag, value, "--out", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    assert flag.strip("-").replace("-", "_") in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag,value", [("--lr", "nan"), ("--drop-path", "inf"), ("--val-portion", "nan")])
def test_non_finite_train_settings_are_refused(cli, tmp_path, flag, value):
    result = cli("train", "DARTS_V2", "--dataset", "digits", flag, value, "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and flag.strip("-").replace("-", "_") in result.stderr, result.output
    assert not (tmp_path / "run").exists()


def test_non_finite_values_in_yaml_configs_and_python_settings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("space: tiny\nlr: .nan\n")
    with pytest.raises(InvalidInputError, match="c.yaml: lr: expected a finite number, got nan"):
        load_search_config(path)
    path.write_text("space: tiny\narch_betas: [0.5, .inf]\n")
    with pytest.raises(InvalidInputError, match="arch_betas"):
        load_search_config(path)
    with pytest.raises(InvalidInputError, match="beta0"):
        search(SearchConfig(space="tiny", beta0=float("nan")), tmp_path / "run")
    with pytest.raises(InvalidInputError, match="weight_decay"):
        TrainConfig(weight_decay=float("inf")).validate()
    assert not (tmp_path / "run").exists()
