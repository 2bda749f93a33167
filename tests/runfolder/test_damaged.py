"""Damaged run folders (issue 12, item 7): resume repairs what it can (a torn last history line, records after
the checkpoint) and otherwise `--resume`, `dmc derive` and `dmc viz` name the damaged file in one line."""

import shutil

import pytest

from dmc.runfolder import SEARCH_RUN
from dmc.search import SearchConfig, derive_run, search
from dmc.train import TrainConfig, train


@pytest.fixture(scope="module")
def finished(tmp_path_factory, search_settings):
    run = tmp_path_factory.mktemp("finished") / "run"
    search(SearchConfig(**search_settings), run)
    return run


@pytest.fixture
def run(tmp_path, finished):
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "unexpected" not in lines[0] and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_a_torn_last_history_line_is_dropped_by_resume_derive_and_viz(tmp_path, search_settings, kill_after,
                                                                      finished, assert_same_run, cli):
    run = tmp_path / "run"
    kill_after("last.pt@0")
    with pytest.raises(kill_after.Killed):
        search(SearchConfig(**search_settings), run)
    with (run / "history.jsonl").open("a") as f:
        f.write('{"epoch": 1, "beta": 0.5, "lr": 0.1, "train_lo')  # a kill or a full disk during the append
    assert derive_run(run, "epoch:0") == derive_run(finished, "epoch:0")
    assert cli("viz", str(run), "-o", str(tmp_path / "viz")).exit_code == 0
    result = cli("search", "--resume", str(run))
    assert result.exit_code == 0, result.output
    assert_same_run(finished, run, "genotype.json")


def test_a_torn_line_in_a_training_history_is_dropped_on_resume(tmp_path, train_settings, kill_after):
    run = tmp_path / "run"
    kill_after("last.pt@0")
    with pytest.raises(kill_after.Killed):
        train(published_darts_v2(), TrainConfig.for_dataset(**train_settings), run)
    with (run / "history.jsonl").open("a") as f:
        f.write('{"epoch": 1, "lr"')
    train(None, TrainConfig(), run, resume=True)
    assert [line[:12] for line in (run / "history.jsonl").read_text().splitlines()] == ['{"epoch": 0,', '{"epoch": 1,']


def _claim_best_at_epoch_0(run):
    state = SEARCH_RUN.load(run / "last.pt")
    SEARCH_RUN.save(run / "last.pt", {**state, "best_epoch": 0})


def _drop_from_last(run, key):
    state = SEARCH_RUN.load(run / "last.pt")
    SEARCH_RUN.save(run / "last.pt", {k: v for k, v in state.items() if k != key})


def published_darts_v2():
    from dmc.genotype import published_genotypes

    return published_genotypes()["DARTS_V2"]


@pytest.mark.parametrize("damage,named", [
    (lambda run: (run / "config.json").write_text('{"config": {"space": "ti'), "config.json"),
    (lambda run: (run / "config.json").write_bytes(b"\xff\xfe garbage"), "config.json"),
    (lambda run: (run / "config.json").write_text('{"config": {"epochs": "two"}}'), "config.json: epochs"),
    (lambda run: (run / "space.yaml").write_text("format: dmc.space/1\ncell: [unclosed\n"), "space.yaml"),
    (lambda run: (run / "space.yaml").write_text("just text\n"), "space.yaml"),
    (lambda run: (run / "last.pt").write_bytes((run / "last.pt").read_bytes()[:500]), "last.pt"),
    (lambda run: (run / "best.pt").write_bytes(b"PK\x03\x04 truncated"), "best.pt"),
    (lambda run: _claim_best_at_epoch_0(run) or (run / "best.pt").unlink(), "best.pt: is missing"),
    (_claim_best_at_epoch_0, "best.pt: holds epoch 1, but last.pt records the best at epoch 0"),
    (lambda run: _drop_from_last(run, "rng"), "its checkpoint has no 'rng'"),
    (lambda run: _drop_from_last(run, "epoch"), "last.pt: damaged checkpoint"),
    (lambda run: (run / "history.jsonl").write_text("{}\n"), "history.jsonl: line 1"),
    (lambda run: (run / "history.jsonl").write_text((run / "history.jsonl").read_text().splitlines()[0] + "\n"),
     "history.jsonl: damaged (it records 1 of the 2 epochs"),
])
def test_resume_names_the_damaged_file(run, cli, damage, named):
    damage(run)
    _one_line_error(cli("search", "--resume", str(run)), named)


def test_a_folder_left_by_the_old_write_order_is_repaired(tmp_path, search_settings, kill_after, finished,
                                                          assert_same_run, cli):
    """Before, last.pt was written first: a kill before best.pt left last.pt recording a best epoch that was not
    on disk. Such a folder resumes now, best.pt being a copy of last.pt."""
    run = tmp_path / "run"
    kill_after("last.pt@1")
    with pytest.raises(kill_after.Killed):
        search(SearchConfig(**search_settings), run)
    kill_after("last.pt@0")  # the folder as it was after epoch 0: best.pt holds epoch 0
    with pytest.raises(kill_after.Killed):
        search(SearchConfig(**search_settings), tmp_path / "epoch0")
    shutil.copyfile(tmp_path / "epoch0" / "best.pt", run / "best.pt")
    assert [SEARCH_RUN.load(run / name)["epoch"] for name in ("best.pt", "last.pt")] == [1, 2]
    result = cli("search", "--resume", str(run))
    assert result.exit_code == 0, result.output
    assert_same_run(finished, run, "genotype.json")


def test_derive_and_viz_name_the_damaged_file(run, cli, tmp_path):
    (run / "genotype.json").unlink()  # viz derives from best.pt then
    best = (run / "best.pt").read_bytes()
    (run / "best.pt").write_bytes(b"\x00" * 64)
    _one_line_error(cli("derive", str(run)), "best.pt")
    _one_line_error(cli("viz", str(run), "-o", str(tmp_path / "a")), "best.pt")
    assert cli("derive", str(run), "--checkpoint", "last", "-o", str(tmp_path / "g.json")).exit_code == 0
    (run / "best.pt").write_bytes(best)

    lines = (run / "history.jsonl").read_text().splitlines()
    (run / "history.jsonl").write_text(lines[0] + "\n" + lines[1][:40] + "}\n")  # damaged, not torn
    _one_line_error(cli("derive", str(run), "--checkpoint", "epoch:1"), "history.jsonl: line 2")
    _one_line_error(cli("viz", str(run), "-o", str(tmp_path / "b")), "history.jsonl: line 2")
    (run / "history.jsonl").write_text(lines[0].replace('"genotype"', '"genotypf"') + "\n")
    _one_line_error(cli("derive", str(run), "--checkpoint", "epoch:0"), "history.jsonl", "epoch 0")
    (run / "history.jsonl").write_text(lines[0].replace('"alphas"', '"alphaz"') + "\n")
    _one_line_error(cli("viz", str(run), "-o", str(tmp_path / "c")), "history.jsonl", "epoch 0")

    (run / "space.yaml").write_bytes(b"\x89PNG\r\n")
    _one_line_error(cli("derive", str(run), "--checkpoint", "last"), "space.yaml")
    _one_line_error(cli("viz", str(run), "-o", str(tmp_path / "d")), "space.yaml")


def test_a_damaged_training_folder_is_named(tmp_path, train_settings, cli):
    run = tmp_path / "run"
    train(published_darts_v2(), TrainConfig.for_dataset(**train_settings), run)
    (run / "last.pt").write_bytes((run / "last.pt").read_bytes()[:300])
    _one_line_error(cli("train", "--resume", str(run)), "last.pt")
    (run / "last.pt").unlink()
    (run / "best.pt").unlink()
    (run / "config.json").write_text("[1, 2")
    _one_line_error(cli("train", "--resume", str(run)), "config.json")
