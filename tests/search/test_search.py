"""The DARTS- search end to end with the tiny space, on the toy image folder (tests/conftest.py): ~1 s a run."""

import json

import pytest
import torch

from dmc.errors import InvalidInputError
from dmc.genotype import load_genotype
from dmc.kernels.select import fused_kernels
from dmc.runfolder import SEARCH_RUN
from dmc.search import SearchConfig, derive_run, read_history, search
from dmc.supernet import build_supernet

SMALL = dict(space="tiny", batch_size=8, channels=4, layers=3, deterministic=True)


@pytest.fixture(scope="module")
def tiny(toy_data):
    return dict(SMALL, dataset=toy_data)


def test_search_writes_a_complete_run_folder(tmp_path, tiny):
    result = search(SearchConfig(epochs=2, **tiny), tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.json", "space.yaml", "history.jsonl", "last.pt", "best.pt", "genotype.json"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    history = read_history(run)
    assert [r["epoch"] for r in history] == [0, 1]
    assert [r["beta"] for r in history] == [1.0, 0.5]  # linear: beta0 * (E - e) / E
    assert history[0]["lr"] == pytest.approx(0.025)
    first = history[0]
    assert len(first["alphas"]["normal"]) == 5 and sum(first["alphas"]["normal"][0]) == pytest.approx(1.0)
    assert 0 <= first["val_acc"] <= 1 and first["train_loss"] > 0
    assert load_genotype(run / "genotype.json") == result.genotype == derive_run(run, "best")
    assert result.best_val_acc == max(r["val_acc"] for r in history)
    assert result.genotype.space == "tiny"
    # the history's genotype of the best epoch is the one derived from best.pt
    assert history[result.best_epoch]["genotype"] == result.genotype.to_dict()
    assert derive_run(run, f"epoch:{result.best_epoch}") == result.genotype
    assert json.loads((run / "config.json").read_text())["dataset"]["name"] == tiny["dataset"]


class _Killed(Exception):
    pass


def test_an_interrupted_and_resumed_search_equals_an_uninterrupted_one(tmp_path, tiny):
    config = dict(epochs=3, seed=3, **tiny)
    search(SearchConfig(**config), tmp_path / "straight")

    def kill_mid_epoch(kind, **info):
        if kind == "step" and info["epoch"] == 1 and info["step"] == 1:
            raise _Killed

    with pytest.raises(_Killed):
        search(SearchConfig(**config), tmp_path / "resumed", on_event=kill_mid_epoch)
    assert len(read_history(tmp_path / "resumed")) == 1
    search(SearchConfig(), tmp_path / "resumed", resume=True)

    straight, resumed = (SEARCH_RUN.load(tmp_path / name / "last.pt") for name in ("straight", "resumed"))
    assert resumed["epoch"] == 3
    for key in ("alpha_normal", "alpha_reduce"):
        assert torch.equal(straight["model"][key], resumed["model"][key]), key
    for key, value in straight["model"].items():
        torch.testing.assert_close(value, resumed["model"][key], rtol=0, atol=0)
    a, b = read_history(tmp_path / "straight"), read_history(tmp_path / "resumed")
    assert [r["val_acc"] for r in a] == [r["val_acc"] for r in b]
    assert [r["alphas"] for r in a] == [r["alphas"] for r in b]


def test_beta0_zero_is_plain_darts_and_differs_from_darts_minus(tmp_path, tiny):
    darts = search(SearchConfig(epochs=1, beta0=0.0, **tiny), tmp_path / "darts")
    minus = search(SearchConfig(epochs=1, **tiny), tmp_path / "minus")
    assert read_history(darts.run_dir)[0]["beta"] == 0.0
    a = SEARCH_RUN.load(darts.run_dir / "last.pt")["model"]["alpha_normal"]
    b = SEARCH_RUN.load(minus.run_dir / "last.pt")["model"]["alpha_normal"]
    assert not torch.equal(a, b)


def test_second_order_search_differs_from_first_order(tmp_path, tiny):
    first = search(SearchConfig(epochs=1, **tiny), tmp_path / "first")
    second = search(SearchConfig(epochs=1, order=2, **tiny), tmp_path / "second")
    a = SEARCH_RUN.load(first.run_dir / "last.pt")["model"]["alpha_normal"]
    b = SEARCH_RUN.load(second.run_dir / "last.pt")["model"]["alpha_normal"]
    assert torch.isfinite(b).all() and not torch.equal(a, b)


def test_existing_run_folder_is_never_overwritten(tmp_path, tiny):
    search(SearchConfig(epochs=1, **tiny), tmp_path / "run")
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(InvalidInputError, match="already holds a search"):
        search(SearchConfig(epochs=1, **tiny), tmp_path / "run")
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_corrupt_checkpoint_gets_a_clear_error(tmp_path, cli, tiny):
    search(SearchConfig(epochs=1, **tiny), tmp_path / "run")
    (tmp_path / "run" / "best.pt").write_bytes(b"garbage")
    with pytest.raises(InvalidInputError, match="corrupt or unreadable dmc search checkpoint"):
        derive_run(tmp_path / "run", "best")
    result = cli("derive", str(tmp_path / "run"))
    assert result.exit_code == 2 and "corrupt or unreadable dmc search checkpoint" in result.stderr
    assert "Traceback" not in result.output
    ok = cli("derive", str(tmp_path / "run"), "--checkpoint", "last", "-o", str(tmp_path / "g.json"))
    assert ok.exit_code == 0 and load_genotype(tmp_path / "g.json").space == "tiny"


def test_cli_search_and_derive(cli, tmp_path, toy_data):
    run = tmp_path / "cli-run"
    result = cli("search", "tiny", "--dataset", toy_data, "--epochs", "2", "--batch-size", "8",
                 "--beta-schedule", "cosine", "--out", str(run), "--deterministic")
    assert result.exit_code == 0, result.output
    assert "best validation accuracy" in result.stdout and "Genotype(normal=" in result.stdout
    assert [r["beta"] for r in read_history(run)] == [1.0, 0.5]
    derived = cli("derive", str(run), "--checkpoint", "epoch:0", "-o", str(tmp_path / "g.json"))
    assert derived.exit_code == 0 and (tmp_path / "g.json").is_file()
    bad = cli("derive", str(run), "--checkpoint", "epoch:9")
    assert bad.exit_code == 2 and "no record of epoch 9" in bad.stderr


def test_cli_rejects_bad_settings(cli, tmp_path):
    assert cli("search", "tiny", "--beta-schedule", "exp", "--out", str(tmp_path / "a")).exit_code == 2
    result = cli("search", "tiny", "--dataset", "cifar10", "--out", str(tmp_path / "b"))
    assert result.exit_code == 2 and "--data-root" in result.stderr
    result = cli("search", "tiny", "--dataset", "folder:/no/such/place", "--out", str(tmp_path / "c"))
    assert result.exit_code == 2 and "no such folder" in result.stderr
    result = cli("search", "--resume", str(tmp_path / "nothing"))
    assert result.exit_code == 2 and "nothing to resume" in result.stderr


def test_cli_seeds_and_yaml_config(cli, tmp_path, toy_data):
    config = tmp_path / "search.yaml"
    config.write_text(f"space: tiny\ndataset: '{toy_data}'\nepochs: 1\nbatch_size: 8\nbeta_schedule: constant\n"
                      "beta0: 0.7\n")
    out = tmp_path / "multi"
    result = cli("search", "--config", str(config), "--seeds", "0,1", "--out", str(out), "--deterministic")
    assert result.exit_code == 0, result.output
    runs = [out / "seed-0", out / "seed-1"]
    assert all((run / "genotype.json").is_file() for run in runs)
    histories = [read_history(run) for run in runs]
    assert [h[0]["beta"] for h in histories] == [0.7, 0.7]
    assert histories[0][0]["alphas"] != histories[1][0]["alphas"]  # independent searches
    assert json.loads((runs[1] / "config.json").read_text())["config"]["seed"] == 1


def test_yaml_config_errors(tmp_path):
    from dmc.search.space_settings import load_search_config

    path = tmp_path / "c.yaml"
    path.write_text("space: tiny\nepochz: 3\n")
    with pytest.raises(InvalidInputError, match="unknown setting 'epochz'"):
        load_search_config(path)
    path.write_text("space: tiny\nepochs: 3\n")
    assert load_search_config(path, epochs=5, lr=None).epochs == 5


def test_fused_kernels_give_the_reference_alphas(tmp_path, tiny):
    """The fused path (the default) and the eager reference agree on a short seeded search.

    Tolerance: Adam's first steps move each alpha by about arch_lr whatever the gradient's size, so
    float rounding in a near-zero gradient can flip one step; merely switching the memory format of
    the reference path moves alphas by ~6e-4 after this run. Gradients themselves agree to 1e-5
    (tests/supernet/test_execution.py).
    """
    runs = {kind: search(SearchConfig(epochs=1, kernels=kind, **tiny), tmp_path / kind) for kind in
            ("fused", "reference")}
    for kind, result in runs.items():
        assert json.loads((result.run_dir / "config.json").read_text())["kernels"] == kind
    fused, reference = (SEARCH_RUN.load(runs[k].run_dir / "last.pt")["model"] for k in ("fused", "reference"))
    for cell in ("alpha_normal", "alpha_reduce"):
        torch.testing.assert_close(fused[cell], reference[cell], rtol=0, atol=SearchConfig().arch_lr)
    fused_history, reference_history = (read_history(runs[k].run_dir)[0] for k in ("fused", "reference"))
    assert fused_history["train_loss"] == pytest.approx(reference_history["train_loss"], rel=1e-4)


def test_a_search_builds_its_supernet_with_the_kernels_it_selected(tmp_path, tiny, monkeypatch):
    chosen = []

    def build(*args, **kwargs):
        chosen.append(kwargs.get("kernels"))
        return build_supernet(*args, **kwargs)

    monkeypatch.setattr("dmc.search.run.build_supernet", build)
    search(SearchConfig(epochs=1, kernels="fused", **tiny), tmp_path / "run")
    assert chosen == [fused_kernels("cpu")]


def test_recompute_edges_search_matches_the_plain_one(tmp_path, tiny):
    plain = search(SearchConfig(epochs=1, **tiny), tmp_path / "plain")
    lean = search(SearchConfig(epochs=1, recompute_edges=True, **tiny), tmp_path / "lean")
    a, b = (SEARCH_RUN.load(r.run_dir / "last.pt")["model"] for r in (plain, lean))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)


def test_cli_execution_options(cli, tmp_path, toy_data):
    result = cli("search", "tiny", "--kernels", "triton", "--out", str(tmp_path / "a"))
    assert result.exit_code == 2 and "kernels must be one of auto, fused, reference" in result.output
    result = cli("search", "tiny", "--dataset", toy_data, "--epochs", "1", "--batch-size", "8", "--channels", "4",
                 "--layers", "3", "--kernels", "reference", "--no-channels-last", "--recompute-edges",
                 "--out", str(tmp_path / "b"))
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["kernels"] == "reference" and config["compile_backend"] is None
    assert config["config"]["recompute_edges"] is True and config["config"]["channels_last"] is False


def test_an_image_size_a_reduction_cannot_halve_is_refused_before_any_step(tmp_path, toy_data):
    config = SearchConfig(space="tiny", dataset=toy_data, epochs=1, batch_size=8, image_size=10)
    with pytest.raises(InvalidInputError, match="input size 10x10: reduction cell .* gets 5x5 feature maps"):
        search(config, tmp_path / "odd")
    assert not (tmp_path / "odd" / "config.json").exists()
