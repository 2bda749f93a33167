"""`dmc ablate`: the beta0 grid, resumable, and a report whose numbers are the runs' own."""

import json
import statistics

import pytest

from dmc.errors import InvalidInputError
from dmc.genotype import genotype_from_dict, load_genotype
from dmc.report import skip_connections
from dmc.runfolder import read_history
from dmc.search import SearchConfig, ablate
from dmc.search.ablation import run_dir_of
from dmc.train import TrainConfig


def _config(toy_data):
    return SearchConfig(space="tiny", dataset=toy_data, epochs=2, batch_size=16, channels=4, layers=3,
                        deterministic=True)


def test_the_grid_reports_its_runs_and_resumes_without_rerunning(toy_data, tmp_path):
    train = TrainConfig.for_dataset(toy_data, epochs=1, batch_size=16, channels=4, layers=3, auxiliary=False,
                                    image_size=16)
    result = ablate(_config(toy_data), tmp_path, [0.0, 1.0], [0, 1], train)
    assert {p.name for p in tmp_path.iterdir()} == {"beta0-0", "beta0-1", "ablation.md", "ablation.json",
                                                     "ablation.png"}
    summary = json.loads((tmp_path / "ablation.json").read_text())["summary"]
    for row in summary:
        skips, val, tests = [], [], []
        for seed in (0, 1):
            run = run_dir_of(tmp_path, row["beta0"], seed)
            history = read_history(run)
            assert history[0]["beta"] == row["beta0"]
            skips.append(skip_connections(load_genotype(run / "genotype.json")))
            val.append(history[-1]["val_acc"])
            tests.append(json.loads((run.with_name(f"seed-{seed}-train") / "result.json").read_text())["test_acc"])
        assert row["skips"]["mean"] == statistics.fmean(skips)
        assert row["val_acc"] == pytest.approx({"mean": statistics.fmean(val), "std": statistics.pstdev(val),
                                                "min": min(val), "max": max(val)})
        assert row["test_acc"]["mean"] == pytest.approx(statistics.fmean(tests))
        assert len(row["skips_per_epoch"]) == 2
    first = result.runs[0]
    assert first.skips_per_epoch == tuple(skip_connections(genotype_from_dict(r["genotype"]))
                                          for r in read_history(first.run_dir))
    report = (tmp_path / "ablation.md").read_text()
    assert "| 0 |" in report and "| 1 |" in report and "ablation.png" in report

    # an interrupted grid: one search lost its result, the others are read back, not rerun
    kept = run_dir_of(tmp_path, 1.0, 1) / "last.pt"
    stamp = kept.stat().st_mtime_ns
    (run_dir_of(tmp_path, 0.0, 1) / "genotype.json").unlink()
    again = ablate(_config(toy_data), tmp_path, [0.0, 1.0], [0, 1], train)
    assert kept.stat().st_mtime_ns == stamp
    assert [r.to_dict() for r in again.runs] == [r.to_dict() for r in result.runs]


def test_bad_grids_are_refused_before_any_search(toy_data, tmp_path):
    with pytest.raises(InvalidInputError, match="beta0 must be a finite number >= 0, got -1.0"):
        ablate(_config(toy_data), tmp_path / "a", [0.0, -1.0], [0])
    with pytest.raises(InvalidInputError, match="must each be different"):
        ablate(_config(toy_data), tmp_path / "b", [0.0, 0.0], [0])
    with pytest.raises(InvalidInputError, match=r"at least one beta0 and one seed \(hint: e.g. beta0s 0,1 seeds 0\)"):
        ablate(_config(toy_data), tmp_path / "c", [], [0])
    with pytest.raises(InvalidInputError, match=r"single-stage searches \(hint: use method darts or pc-darts\)"):
        ablate(SearchConfig(space="tiny", method="p-darts"), tmp_path / "d", [0.0], [0])
    assert not any((tmp_path / d).exists() for d in "abcd")


def test_the_cli_names_the_flags_of_a_bad_grid(cli, tmp_path):
    result = cli("ablate", "tiny", "-o", str(tmp_path / "grid"), "--beta0", "0,0", "--seeds", "0")
    assert result.exit_code == 2 and "(hint: e.g. --beta0 0,0.4,0.7,1)" in result.stderr


def test_cli_runs_a_grid_and_prints_the_summary(cli, toy_data, tmp_path):
    result = cli("ablate", "tiny", "-o", str(tmp_path / "grid"), "--beta0", "0,1", "--seeds", "0", "--dataset",
                 toy_data, "--epochs", "1", "--batch-size", "16", "--channels", "4", "--layers", "3")
    assert result.exit_code == 0, result.output
    assert "beta0 0:" in result.output and "beta0 1:" in result.output and "ablation.md" in result.output
    bad = cli("ablate", "tiny", "-o", str(tmp_path / "bad"), "--seeds", "a,b")
    assert bad.exit_code == 2 and "--seeds 'a,b' is not a comma-separated list of integers" in bad.stderr
