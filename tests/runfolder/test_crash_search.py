"""A search stopped right after any one of its writes resumes to the uninterrupted result (issue 12, item 1).

The stop is simulated in-process (nothing is written after it, as after SIGKILL); test_sigkill.py kills real
processes.
"""

import pytest

from dmc.runfolder import SEARCH_RUN, read_history
from dmc.search import SearchConfig, derive_run, search

WRITES = ["config.json", "history.jsonl@0", "best.pt@0", "last.pt@0", "history.jsonl@1", "best.pt@1", "last.pt@1",
          "genotype.json"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, search_settings):
    run = tmp_path_factory.mktemp("straight") / "run"
    search(SearchConfig(**search_settings), run)
    return run


def test_a_search_writes_best_before_last_every_epoch(tmp_path, search_settings, kill_after):
    seen = kill_after(None)
    search(SearchConfig(**search_settings), tmp_path / "run")
    assert seen == WRITES  # the toy search improves at both epochs: best.pt is written twice


@pytest.mark.parametrize("label", WRITES)
def test_a_search_stopped_after_any_write_resumes_to_the_same_result(label, tmp_path, straight, search_settings,
                                                                     kill_after, assert_same_run):
    run = tmp_path / "run"
    kill_after(label)
    with pytest.raises(kill_after.Killed):
        search(SearchConfig(**search_settings), run)
    result = search(SearchConfig(), run, resume=True)
    assert_same_run(straight, run, "genotype.json")
    assert (result.best_epoch, result.genotype) == (1, derive_run(straight, "best"))


def test_between_best_and_last_the_folder_is_consistent_before_resume(tmp_path, search_settings, kill_after,
                                                                       straight):
    # a search of one epoch stopped between its two checkpoint writes: the issue's "every --resume and
    # `dmc derive` then fails"
    run = tmp_path / "run"
    kill_after("best.pt@0")
    with pytest.raises(kill_after.Killed):
        search(SearchConfig(**search_settings), run)
    assert not (run / "last.pt").exists()
    assert derive_run(run, "best") == derive_run(run, "epoch:0")  # best.pt is complete and matches the history
    kill_after("best.pt@1")
    with pytest.raises(kill_after.Killed):
        search(SearchConfig(), run, resume=True)
    assert SEARCH_RUN.load(run / "last.pt")["epoch"] == 1
    assert SEARCH_RUN.load(run / "best.pt")["epoch"] == 2
    assert derive_run(run, "best") == derive_run(straight, "best")  # already the final best
    search(SearchConfig(), run, resume=True)
    assert [r["epoch"] for r in read_history(run)] == [0, 1]
    assert SEARCH_RUN.load(run / "last.pt")["epoch"] == 2
