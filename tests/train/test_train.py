"""Training compiled networks on digits: run folder, checkpoints that rebuild the network, exact resume."""

import json

import pytest
import torch

from dmc.compiler import load_network
from dmc.data import load_dataset
from dmc.errors import InvalidInputError
from dmc.genotype import published_genotypes
from dmc.runfolder import read_history
from dmc.train import TrainConfig, load_train_checkpoint, train

SMALL = dict(channels=4, layers=3, batch_size=256, cutout=8, deterministic=True)
DARTS_V2 = published_genotypes()["DARTS_V2"]


class _Killed(Exception):
    pass


def test_training_writes_a_run_whose_checkpoints_rebuild_the_network(tmp_path):
    result = train(DARTS_V2, TrainConfig.for_dataset("digits", epochs=2, **SMALL), tmp_path / "run")
    run = tmp_path / "run"
    history = read_history(run)
    assert [r["epoch"] for r in history] == [0, 1]
    assert history[0]["drop_path"] == 0.0 and history[1]["drop_path"] == pytest.approx(0.1)
    assert history[0]["lr"] == pytest.approx(0.025)
    assert json.loads((run / "result.json").read_text())["test_acc"] == result.test_acc == history[-1]["test_acc"]
    network = load_network(run / "last.pt").eval()  # genotype + build args + weights, nothing else needed
    assert network.genotype == DARTS_V2 and network.build_args.auxiliary
    assert result.parameters == network.num_parameters()
    test = load_dataset("digits").test
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.stack([test[i][1] for i in range(len(test))])
    with torch.no_grad():
        accuracy = (network(x).argmax(1) == y).float().mean().item()
    assert accuracy == pytest.approx(result.test_acc)


def test_interrupted_and_resumed_training_equals_an_uninterrupted_one(tmp_path):
    config = dict(epochs=3, **SMALL)
    train(DARTS_V2, TrainConfig.for_dataset("digits", **config), tmp_path / "a")

    def kill(kind, **info):
        if kind == "step" and info["epoch"] == 1 and info["step"] == 2:
            raise _Killed

    with pytest.raises(_Killed):
        train(DARTS_V2, TrainConfig.for_dataset("digits", **config), tmp_path / "b", on_event=kill)
    resumed = train(None, TrainConfig(), tmp_path / "b", resume=True)
    a, b = (load_train_checkpoint(tmp_path / name / "last.pt") for name in "ab")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert resumed.test_acc == json.loads((tmp_path / "a" / "result.json").read_text())["test_acc"]


def test_cli_train_then_resume_and_errors(cli, tmp_path):
    run = tmp_path / "run"
    args = ["--channels", "4", "--layers", "3", "--batch-size", "256", "--deterministic"]
    result = cli("train", "DARTS_V2", "--dataset", "digits", "--epochs", "1", "--out", str(run), *args)
    assert result.exit_code == 0, result.output
    assert "top-1 test accuracy" in result.stdout
    again = cli("train", "--resume", str(run))  # a finished run reports its result
    assert again.exit_code == 0 and "top-1 test accuracy" in again.stdout
    assert len(read_history(run)) == 1
    exists = cli("train", "DARTS_V2", "--dataset", "digits", "--out", str(run))
    assert exists.exit_code == 2 and "already holds a training run" in exists.stderr
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "last.pt").write_bytes(b"\x00" * 10)
    corrupt = cli("train", "--resume", str(tmp_path / "broken"))
    assert corrupt.exit_code == 2 and "corrupt or unreadable dmc training checkpoint" in corrupt.stderr
    missing = cli("train", "DARTS_V2", "--dataset", "cifar10:/no/such/folder", "--out", str(tmp_path / "c"))
    assert missing.exit_code == 2 and "no CIFAR10 data found" in missing.stderr


def test_invalid_train_settings():
    with pytest.raises(InvalidInputError, match="drop_path"):
        TrainConfig.for_dataset("digits", drop_path=1.5)
    with pytest.raises(InvalidInputError, match="unknown setting 'epochz'"):
        TrainConfig.from_dict({"epochz": 1})
