"""A training run stopped at any point, in its first epoch too, resumes to the uninterrupted result (issue 12,
items 1 and 3). Stops are simulated in-process; test_sigkill.py kills real processes."""

import pytest

from dmc.genotype import published_genotypes
from dmc.runfolder import read_history
from dmc.train import TrainConfig, load_train_checkpoint, train

DARTS_V2 = published_genotypes()["DARTS_V2"]
WRITES = ["config.json", "history.jsonl@0", "best.pt@0", "last.pt@0", "history.jsonl@1", "best.pt@1", "last.pt@1",
          "result.json"]


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def straight(tmp_path_factory, train_settings):
    run = tmp_path_factory.mktemp("straight") / "run"
    train(DARTS_V2, TrainConfig.for_dataset(**train_settings), run)
    return run


def test_training_writes_best_before_last_every_epoch(tmp_path, train_settings, kill_after):
    seen = kill_after(None)
    train(DARTS_V2, TrainConfig.for_dataset(**train_settings), tmp_path / "run")
    assert seen == WRITES  # validation accuracy improves at both epochs of the toy run


@pytest.mark.parametrize("label", WRITES)
def test_training_stopped_after_any_write_resumes_to_the_same_result(label, tmp_path, straight, train_settings,
                                                                     kill_after, assert_same_run):
    run = tmp_path / "run"
    kill_after(label)
    with pytest.raises(kill_after.Killed):
        train(DARTS_V2, TrainConfig.for_dataset(**train_settings), run)
    train(None, TrainConfig(), run, resume=True)
    assert_same_run(straight, run, "result.json")


def test_training_killed_in_its_first_epoch_resumes(tmp_path, straight, train_settings, cli, assert_same_run):
    """Issue 12, item 3: before, `--resume` said there was no checkpoint and a restart said to use --resume."""

    def stop_in_first_epoch(kind, **info):
        if kind == "step" and info["step"] == 2:
            raise _Stop

    run = tmp_path / "run"
    with pytest.raises(_Stop):
        train(DARTS_V2, TrainConfig.for_dataset(**train_settings), run, on_event=stop_in_first_epoch)
    assert not any(run.glob("*.pt")) and (run / "config.json").is_file()
    result = cli("train", "--resume", str(run))
    assert result.exit_code == 0, result.output
    assert_same_run(straight, run, "result.json")


def test_a_best_checkpoint_ahead_of_last_is_where_training_continues(tmp_path, train_settings, kill_after, straight):
    run = tmp_path / "run"
    kill_after("best.pt@1")
    with pytest.raises(kill_after.Killed):
        train(DARTS_V2, TrainConfig.for_dataset(**train_settings), run)
    assert load_train_checkpoint(run / "best.pt")["epoch"] == 2 and load_train_checkpoint(run / "last.pt")["epoch"] == 1
    result = train(None, TrainConfig(), run, resume=True)  # nothing left to train: it reports the result
    assert load_train_checkpoint(run / "last.pt")["epoch"] == 2 and len(read_history(run)) == 2
    assert (run / "best.pt").read_bytes() == (run / "last.pt").read_bytes()
    assert result.best_epoch == 1 and (run / "result.json").read_text() == (straight / "result.json").read_text()
