"""`--resume` with setting flags (search and train): refused in one line, not silently ignored; resuming a finished
run says that it has finished."""

from dmc.runfolder import read_history

SEARCH = ["search", "tiny", "--epochs", "1", "--batch-size", "8", "--channels", "4", "--layers", "3", "--kernels",
          "reference", "--device", "cpu"]
TRAIN = ["train", "DARTS_V2", "--epochs", "1", "--batch-size", "8", "--channels", "4", "--layers", "3", "--cutout",
         "4", "--device", "cpu"]


def test_search_resume_refuses_settings_and_says_a_finished_run_is_finished(cli, tmp_path, toy_data):
    run = tmp_path / "run"
    assert cli(*SEARCH, "--dataset", toy_data, "--out", str(run)).exit_code == 0
    refused = cli("search", "--resume", str(run), "--epochs", "5", "--lr", "0.1", "--device", "cpu")
    assert refused.exit_code == 2
    assert refused.stderr == ("error: --resume continues the run with the settings it started with: --epochs, --lr, "
                              "--device cannot change them (hint: drop --epochs, --lr, --device, or start a new "
                              "search with --out)\n")
    assert cli("search", "--resume", str(run), "--no-augment").stderr.startswith(
        "error: --resume continues the run with the settings it started with: --no-augment cannot change it")
    again = cli("search", "--resume", str(run))
    assert again.exit_code == 0, again.output
    assert f"{run} has already finished (1 of 1 epochs): nothing to continue" in again.stdout
    assert "best validation accuracy" in again.stdout and len(read_history(run)) == 1


def test_train_resume_refuses_settings_and_says_a_finished_run_is_finished(cli, tmp_path, toy_data):
    run = tmp_path / "run"
    assert cli(*TRAIN, "--dataset", toy_data, "--out", str(run)).exit_code == 0
    refused = cli("train", "--resume", str(run), "--epochs", "5")
    assert refused.exit_code == 2
    assert refused.stderr == ("error: --resume continues the run with the settings it started with: --epochs cannot "
                              "change it (hint: drop --epochs, or start a new training run with --out)\n")
    assert "--device, --out cannot" in cli("train", "--resume", str(run), "--device", "cpu", "--out", "x").stderr
    again = cli("train", "--resume", str(run))
    assert again.exit_code == 0, again.output
    assert f"{run} has already finished (1 of 1 epochs): nothing to continue" in again.stdout
    assert "top-1 test accuracy" in again.stdout and len(read_history(run)) == 1
