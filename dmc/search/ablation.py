"""The beta0 ablation of the DARTS- paper (Table 6) in one call: a grid of searches over beta0 and seeds,
optionally training each found network, summarised in one report.

``out/beta0-<b>/seed-<s>/`` is each search's run folder (``.../seed-<s>-train/`` its training run). The grid is
resumable: a finished run (its result file written) is read, an interrupted one resumed, a missing one started.
The report (``ablation.md``, ``ablation.json``, ``ablation.png``) gives per beta0, mean and spread over the
seeds: the skip connections of the normal cell derived at every epoch and of the run's genotype (``genotype.json``,
from the best epoch: Algorithm 1), the supernet's validation accuracy (last and best epoch) and, with training,
the derived networks' test accuracy.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmc.distributed import is_main_process
from dmc.errors import SettingError
from dmc.families import AnyGenotype
from dmc.genotype import genotype_from_dict, load_genotype
from dmc.io import atomic_write_text
from dmc.report import skip_connections
from dmc.runfolder import read_history
from dmc.search.config import SearchConfig
from dmc.search.run import search


@dataclass(frozen=True)
class AblationRun:
    """One search of the grid (and its training run, if any)."""

    beta0: float
    seed: int
    run_dir: Path
    genotype: AnyGenotype
    skips_per_epoch: tuple[int, ...]
    """Skip connections of the normal cell derived at the end of each epoch."""
    val_acc: float
    """The supernet's validation accuracy after the last epoch."""
    best_val_acc: float
    test_acc: float | None = None
    """Top-1 test accuracy of the derived network after training (None without --train-epochs)."""

    @property
    def skips(self) -> int:
        return skip_connections(self.genotype)

    def to_dict(self) -> dict[str, Any]:
        return {"beta0": self.beta0, "seed": self.seed, "run_dir": str(self.run_dir),
                "genotype": self.genotype.to_dict(), "skips": self.skips, "skips_per_epoch": list(self.skips_per_epoch),
                "val_acc": self.val_acc, "best_val_acc": self.best_val_acc, "test_acc": self.test_acc}


@dataclass(frozen=True)
class AblationResult:
    out_dir: Path
    runs: tuple[AblationRun, ...]
    report: Path

    def summary(self) -> list[dict[str, Any]]:
        """Per beta0: mean and spread (population std) over the seeds."""
        return summarise(self.runs)


def run_dir_of(out_dir: Path, beta0: float, seed: int) -> Path:
    return Path(out_dir) / f"beta0-{beta0:g}" / f"seed-{seed}"


def ablate(config: SearchConfig, out_dir: str | Path, beta0s: Sequence[float], seeds: Sequence[int],
           train_config=None, on_event: Callable[..., None] | None = None) -> AblationResult:
    """Searches ``config`` once per (beta0, seed), trains each genotype with ``train_config`` (a
    :class:`dmc.train.TrainConfig`, its seed set per run) when given, and writes the report; see the module
    docstring."""
    if not beta0s or not seeds:
        raise SettingError("the ablation needs at least one beta0 and one seed", "e.g. {beta0s} 0,1 {seeds} 0")
    if len(set(beta0s)) != len(beta0s) or len(set(seeds)) != len(seeds):
        raise SettingError("beta0 values and seeds must each be different", "e.g. {beta0s} 0,0.4,0.7,1")
    if config.method == "p-darts":
        raise SettingError("the ablation grid runs single-stage searches", "use {method} darts or pc-darts")
    out_dir = Path(out_dir)
    for beta0 in beta0s:  # every setting is checked before the first search starts
        SearchConfig.from_dict({**config.to_dict(), "beta0": beta0}, f"search settings with beta0 {beta0:g}")
    runs = []
    for beta0 in beta0s:
        for seed in seeds:
            settings = SearchConfig.from_dict({**config.to_dict(), "beta0": beta0, "seed": seed})
            runs.append(_one(settings, run_dir_of(out_dir, beta0, seed), train_config, on_event))
    report = out_dir / "ablation.md"
    if is_main_process():  # in a distributed grid, rank 0 writes the report
        write_ablation_report(out_dir, runs, config)
    return AblationResult(out_dir, tuple(runs), report)


def _one(config: SearchConfig, run_dir: Path, train_config, on_event) -> AblationRun:
    if not (run_dir / "genotype.json").is_file():
        search(config, run_dir, resume=(run_dir / "config.json").is_file(), on_event=on_event)
    history = read_history(run_dir)
    genotype = load_genotype(run_dir / "genotype.json")  # the search derived it from best.pt
    test_acc = None
    if train_config is not None:
        test_acc = _train(genotype, train_config, run_dir.with_name(run_dir.name + "-train"), config.seed, on_event)
    return AblationRun(config.beta0, config.seed, run_dir, genotype,
                       tuple(skip_connections(genotype_from_dict(r["genotype"])) for r in history),
                       history[-1]["val_acc"], max(r["val_acc"] for r in history), test_acc)


def _train(genotype: AnyGenotype, train_config, run_dir: Path, seed: int, on_event) -> float:
    from dmc.train import TrainConfig, train

    result_file = run_dir / "result.json"
    if not result_file.is_file():
        settings = TrainConfig.from_dict({**train_config.to_dict(), "seed": seed})
        train(genotype, settings, run_dir, resume=(run_dir / "config.json").is_file(), on_event=on_event)
    return float(json.loads(result_file.read_text())["test_acc"])


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "min": min(values),
            "max": max(values)}


def summarise(runs: Sequence[AblationRun]) -> list[dict[str, Any]]:
    """Per beta0 (in the order first seen): mean, population std, min and max over its seeds."""
    rows = []
    for beta0 in dict.fromkeys(r.beta0 for r in runs):
        group = [r for r in runs if r.beta0 == beta0]
        epochs = min(len(r.skips_per_epoch) for r in group)
        row = {"beta0": beta0, "seeds": [r.seed for r in group], "skips": _spread([r.skips for r in group]),
               "val_acc": _spread([r.val_acc for r in group]), "best_val_acc": _spread([r.best_val_acc for r in group]),
               "skips_per_epoch": [statistics.fmean(r.skips_per_epoch[e] for r in group) for e in range(epochs)]}
        test_accs = [r.test_acc for r in group if r.test_acc is not None]
        if len(test_accs) == len(group):
            row["test_acc"] = _spread(test_accs)
        rows.append(row)
    return rows


def write_ablation_report(out_dir: Path, runs: Sequence[AblationRun], config: SearchConfig) -> Path:
    """``ablation.json`` (every run and the summary), ``ablation.png`` and ``ablation.md``; returns the latter."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = summarise(runs)
    atomic_write_text(out_dir / "ablation.json", json.dumps(
        {"config": config.to_dict(), "summary": rows, "runs": [r.to_dict() for r in runs]}, indent=2,
        allow_nan=False) + "\n")
    picture = plot_ablation(rows, out_dir / "ablation.png")

    def cell(spread: dict[str, float], scale: float = 1.0, digits: int = 2) -> str:
        return f"{spread['mean'] * scale:.{digits}f} ± {spread['std'] * scale:.{digits}f}"

    trained = all("test_acc" in row for row in rows)
    lines = [f"# beta0 ablation: {config.space} on {config.dataset}", "",
             f"{len(rows)} beta0 values x {len(rows[0]['seeds'])} seeds ({', '.join(map(str, rows[0]['seeds']))}), "
             f"{config.epochs} search epochs, {config.beta_schedule} beta decay; mean ± std over the seeds.", "",
             "| beta0 | skips in the normal cell (genotype.json: best epoch) | supernet val acc % (last epoch) | "
             "(best) |"
             + (" derived network test acc % |" if trained else ""),
             "| --- | --- | --- | --- |" + (" --- |" if trained else "")]
    for row in rows:
        lines.append(f"| {row['beta0']:g} | {cell(row['skips'], digits=1)} | {cell(row['val_acc'], 100)} | "
                     f"{cell(row['best_val_acc'], 100)} |" + (f" {cell(row['test_acc'], 100)} |" if trained else ""))
    lines += ["", f"![skip connections per epoch]({picture.name})", "", "## Runs", "",
              "| beta0 | seed | skips | val acc % | test acc % | genotype |", "| --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        test = f"{r.test_acc * 100:.2f}" if r.test_acc is not None else "-"
        lines.append(f"| {r.beta0:g} | {r.seed} | {r.skips} | {r.val_acc * 100:.2f} | {test} | "
                     f"`{r.genotype.describe()}` |")
    report = out_dir / "ablation.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    return report


def plot_ablation(rows: list[dict[str, Any]], path: Path) -> Path:
    """Skip connections of the normal cell per epoch, one curve (mean over the seeds) per beta0."""
    from dmc.viz.figure import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for row in rows:
        epochs = list(range(len(row["skips_per_epoch"])))
        ax.plot(epochs, row["skips_per_epoch"], "o-", markersize=3, label=f"beta0 = {row['beta0']:g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("skip connections (normal cell)")
    ax.set_title("beta0 ablation: skip connections, mean over seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110, tight=False)[0]
