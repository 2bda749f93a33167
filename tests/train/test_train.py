"""Training compiled networks: run folder, checkpoints that rebuild the network, exact resume, best.pt selected
on held-out validation images."""

import json

import pytest
import torch

from dmc.compiler import load_network
from dmc.data import load_dataset
from dmc.errors import InvalidInputError
from dmc.genotype import published_genotypes
from dmc.runfolder import read_history
from dmc.train import TrainConfig, load_train_checkpoint, train

SMALL = dict(channels=4, layers=3, batch_size=8, cutout=4, deterministic=True)  # on the toy data: ~1 s a run
DARTS_V2 = published_genotypes()["DARTS_V2"]


class _Killed(Exception):
    pass


def test_training_writes_a_run_whose_checkpoints_rebuild_the_network(tmp_path, toy_data):
    result = train(DARTS_V2, TrainConfig.for_dataset(toy_data, epochs=2, **SMALL), tmp_path / "run")
    run = tmp_path / "run"
    history = read_history(run)
    assert [r["epoch"] for r in history] == [0, 1]
    assert history[0]["drop_path"] == 0.0 and history[1]["drop_path"] == pytest.approx(0.1)
    assert history[0]["lr"] == pytest.approx(0.025)
    assert json.loads((run / "result.json").read_text())["test_acc"] == result.test_acc == history[-1]["test_acc"]
    network = load_network(run / "last.pt").eval()  # genotype + build args + weights, nothing else needed
    assert network.genotype == DARTS_V2 and network.build_args.auxiliary
    assert result.parameters == network.num_parameters()
    test = load_dataset(toy_data).test
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.tensor([int(test[i][1]) for i in range(len(test))])
    with torch.no_grad():
        accuracy = (network(x).argmax(1) == y).float().mean().item()
    assert accuracy == pytest.approx(result.test_acc)


def test_interrupted_and_resumed_training_equals_an_uninterrupted_one(tmp_path, toy_data):
    config = dict(epochs=3, **SMALL)
    train(DARTS_V2, TrainConfig.for_dataset(toy_data, **config), tmp_path / "a")

    def kill(kind, **info):
        if kind == "step" and info["epoch"] == 1 and info["step"] == 2:
            raise _Killed

    with pytest.raises(_Killed):
        train(DARTS_V2, TrainConfig.for_dataset(toy_data, **config), tmp_path / "b", on_event=kill)
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


def test_best_checkpoint_is_selected_on_a_held_out_validation_split(tmp_path, toy_data):
    """Issue 12: best.pt was the epoch with the best *test* accuracy; it is now selected on validation images
    held out of the training split, and the test accuracy of both best.pt and the last epoch is reported."""
    steps = []
    config = TrainConfig.for_dataset(toy_data, epochs=3, batch_size=8, channels=4, layers=3, cutout=4, seed=2,
                                     val_portion=0.25, deterministic=True)
    result = train(DARTS_V2, config, tmp_path / "run",
                   on_event=lambda kind, **info: steps.append(info["steps"]) if kind == "epoch_start" else None)
    history = read_history(tmp_path / "run")
    assert steps == [3, 3, 3]  # 24 of the 32 training images train, 8 are held out
    val = [r["val_acc"] for r in history]
    assert len(set(val)) > 1 and result.best_epoch == val.index(max(val))
    assert result.best_val_acc == max(val) and result.best_test_acc == history[result.best_epoch]["test_acc"]
    assert result.test_acc == history[-1]["test_acc"]
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved == {"test_acc": result.test_acc, "best_epoch": result.best_epoch, "best_val_acc": max(val),
                     "best_test_acc": result.best_test_acc, "val_portion": 0.25, "parameters": result.parameters,
                     "epochs": 3}
    assert load_train_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == result.best_epoch + 1


def test_validation_images_are_fixed_unaugmented_and_disjoint_from_training(toy_data):
    from dmc.train.loop import _splits

    config = TrainConfig.for_dataset(toy_data, val_portion=0.25, seed=5)
    data = load_dataset(toy_data, augment=True)
    (train_a, val_a), (_, val_b) = _splits(config, data), _splits(config, data)
    assert sorted(train_a.indices + val_a.indices) == list(range(32)) and len(val_a) == 8
    assert val_a.indices == val_b.indices  # depends only on the seed
    assert torch.equal(val_a[0][0], val_b[0][0])  # no random crop or flip on validation images


def test_without_a_validation_split_best_is_the_last_epoch(tmp_path, toy_data, cli):
    result = cli("train", "DARTS_V2", "--dataset", toy_data, "--epochs", "2", "--channels", "4", "--layers", "3",
                 "--batch-size", "8", "--val-portion", "0", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "best.pt (epoch 1, the last epoch)" in result.stdout
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["best_epoch"] == 1 and saved["best_val_acc"] is None and saved["best_test_acc"] == saved["test_acc"]
    assert "val_acc" not in read_history(tmp_path / "run")[0]


def test_a_last_batch_of_one_image_is_dropped_not_a_crash_in_the_auxiliary_head(tmp_path, toy_data):
    """29 training images (3 held out) in batches of 7 leave one image for the last batch: batch norm cannot train on
    it where the map is 1x1 (the auxiliary head), so the epoch ends after its 4 full batches."""
    steps, seen = [], []
    config = TrainConfig.for_dataset(toy_data, epochs=2, batch_size=7, channels=4, layers=3, cutout=4)
    assert config.auxiliary

    def record(kind, **info):
        if kind == "epoch_start":
            steps.append(info["steps"])
        elif kind == "step":
            seen.append(info["step"])

    train(DARTS_V2, config, tmp_path / "run", on_event=record)
    assert steps == [4, 4] and seen == [1, 2, 3, 4] * 2
    assert len(read_history(tmp_path / "run")) == 2
    with pytest.raises(InvalidInputError, match="batch_size must be >= 2"):
        TrainConfig.for_dataset(toy_data, batch_size=1)


@pytest.mark.parametrize("data,message", [
    ({"epochs": "30"}, "epochs: expected an integer"), ({"lr": None}, "lr: expected a finite number, got None"),
    ({"val_portion": 1.0}, "val_portion must be in"), ({"grad_clip": 0}, "grad_clip must be > 0"),
    ({"device": "cuda:x"}, "device must be"), ({"drop_path": float("nan")}, "drop_path: expected a finite number"),
])
def test_wrongly_typed_or_out_of_range_train_settings(data, message):
    with pytest.raises(InvalidInputError, match=message):
        TrainConfig.from_dict(data, "run/config.json")


def test_a_compiled_network_file_trains_as_compiled_from_its_weights(tmp_path, toy_data, cli):
    from dmc.compiler import build_network, save_network

    torch.manual_seed(3)
    compiled = build_network(DARTS_V2, channels=4, layers=3, num_classes=2, auxiliary=True)
    path = save_network(compiled, tmp_path / "net.pt")
    config = TrainConfig.for_dataset(toy_data, epochs=1, batch_size=8, cutout=4, deterministic=True)
    result = train(path, config, tmp_path / "run")  # the config's 16 channels / 8 cells are not used
    trained = load_network(result.run_dir / "last.pt")
    assert trained.build_args == compiled.build_args and trained.auxiliary_head is not None
    start = load_network(result.run_dir / "init.pt")
    for key, value in compiled.state_dict().items():
        assert torch.equal(start.state_dict()[key], value), key  # training started from the file's weights
    assert not torch.equal(trained.state_dict()["classifier.weight"], compiled.state_dict()["classifier.weight"])

    # stopped before its first epoch ended: resume starts over from init.pt, not from a fresh initialisation
    (result.run_dir / "last.pt").unlink()
    (result.run_dir / "best.pt").unlink()
    (result.run_dir / "history.jsonl").unlink()
    again = train(None, TrainConfig(), result.run_dir, resume=True)
    assert torch.equal(load_network(again.run_dir / "last.pt").state_dict()["classifier.weight"],
                       trained.state_dict()["classifier.weight"])

    ten = save_network(build_network(DARTS_V2, channels=4, layers=3), tmp_path / "ten.pt")
    with pytest.raises(InvalidInputError, match="the network has 10 classes") as info:
        train(ten, config, tmp_path / "wrong")
    assert info.value.hint.startswith("compile it with num_classes 2 (and the dataset's input channels)")
    refused = cli("train", str(ten), "--dataset", toy_data, "-o", str(tmp_path / "cli-ten"))
    assert refused.exit_code == 2 and "(hint: compile it with --num-classes 2 (and the dataset's" in refused.stderr
    refused = cli("train", str(path), "--dataset", toy_data, "--channels", "8", "-o", str(tmp_path / "cli"))
    assert refused.exit_code == 2 and "already fixes the network's build arguments" in refused.stderr


def test_an_auxiliary_head_the_images_are_too_small_for_names_the_settings(cli, tmp_path, toy_data):
    config = TrainConfig.for_dataset(toy_data, epochs=1, batch_size=8, channels=4, layers=3, image_size=16)
    with pytest.raises(InvalidInputError, match="the auxiliary head gets 4x4 feature maps") as info:
        train(DARTS_V2, config, tmp_path / "run")
    assert info.value.hint == "train with auxiliary=False or a larger image_size"
    result = cli("train", "DARTS_V2", "--dataset", toy_data, "--image-size", "16", "--channels", "4", "--layers", "3",
                 "-o", str(tmp_path / "cli"))
    assert result.exit_code == 2 and "(hint: train with --no-auxiliary or a larger --image-size)" in result.stderr
