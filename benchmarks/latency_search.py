"""Searching for a latency budget, end to end (issue 32, item 5): proxyless_s5 on the embedded digits at three targets.

    python benchmarks/latency_search.py --work runs/latency-search     # the full run, about an hour on 2 cores
    python benchmarks/latency_search.py --smoke                        # the same code path in a few minutes

What it does, each step through the `dmc` command a user runs (every step is skipped when its output exists, so a
rerun with the same --work continues):
1. `dmc latency table proxyless_s5 --width W` at the deployed input size, 224 px (onnxruntime, 1 thread, batch 1).
2. Three targets spanning the space: fractions of the way from the fastest network the table prices to the
   slowest. One `dmc search --cost latency:LUT --cost-target T` per target, on digits at 32 px, and one search
   without a cost for contrast.
3. Every derived network and the published networks of the space (FairNAS-A/B/C, and mobilenet_v2, whose
   skeleton differs from the space's), at the same width, trained from scratch with the same `dmc train` recipe
   on digits: top-1 test accuracy.
4. Every network exported as `dmc export` exports and timed end to end at 224 px in the table's session settings,
   all of them interleaved round by round: the median and range, next to what the table predicts.
Writes benchmarks/results/latency_search-<cpu>.json and .png (the accuracy-vs-latency picture) with --full
(the default settings); --smoke writes into --work only.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from dmc.api import load_latency_table, network_from_source
from dmc.exporters.latency import cpu_model, interleaved_times_ms, network_runner, torch_threads

FULL = {"width": 0.5, "fractions": [0.2, 0.45, 0.7], "search_epochs": 12, "search_batch": 64, "arch_lr": 1e-2,
        "cost_loss": "tfnas", "cost_weight": 1.0, "train_epochs": 8, "repeats": 30, "table_repeats": 20}
"""Digits has about 900 search-training images, 14 steps an epoch at batch 64: the architecture's learning rate is
ten times the S5 setting's so that 170 steps can move the alphas; the cost weight is TF-NAS's lambda raised to 1 so
that the cost is heard over the noise of so few steps."""
SMOKE = {**FULL, "width": 0.25, "search_epochs": 2, "train_epochs": 1, "repeats": 3, "table_repeats": 3}
PUBLISHED = ["FairNAS_A", "FairNAS_B", "FairNAS_C", "mobilenet_v2"]
IMAGENET_TOP1 = {"FairNAS_A": 75.34, "FairNAS_B": 75.10, "FairNAS_C": 74.69, "mobilenet_v2": 72.0}
"""Their papers' ImageNet top-1 at width 1 (for the record; the accuracy measured here is on digits)."""


def dmc(*args: str) -> None:
    """Runs one `dmc` command, failing loudly."""
    print("$ dmc " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "dmc", *args], check=True)


def table_span(table: Any) -> tuple[float, float]:
    """The fastest and the slowest network the table prices."""
    costs = table.candidate_costs()
    return (table.fixed_ms + sum(min(c) for c in costs), table.fixed_ms + sum(max(c) for c in costs))


def search(work: Path, name: str, table_path: Path, config: dict[str, Any], target: float | None) -> Path:
    run = work / f"search-{name}"
    if (run / "config.json").exists() and not (run / "genotype.json").exists():
        dmc("search", "--resume", str(run))  # interrupted
    elif not (run / "genotype.json").exists():
        args = ["search", "proxyless_s5", "--dataset", "digits", "--image-size", "32", "--width", str(config["width"]),
                "--epochs", str(config["search_epochs"]), "--batch-size", str(config["search_batch"]),
                "--arch-lr", str(config["arch_lr"]), "-o", str(run)]
        if target is not None:
            args += ["--cost", f"latency:{table_path}", "--cost-target", f"{target:.4f}",
                     "--cost-loss", config["cost_loss"]]
            if config["cost_weight"] is not None:
                args += ["--cost-weight", str(config["cost_weight"])]
        dmc(*args)
    return run / "genotype.json"


def derive_within(work: Path, run: str, target: float, table_path: Path | None = None) -> str:
    """`dmc derive RUN --cost-target T`: the most probable network of the run's alphas costing 95-100% of T."""
    out = work / f"{run}-budget-{target:.4f}.json"
    if not out.exists():
        cost = ["--cost", f"latency:{table_path}"] if table_path else []
        dmc("derive", str(work / run), "--cost-target", f"{target:.4f}", *cost, "-o", str(out))
    return str(out)


def train(work: Path, name: str, source: str, config: dict[str, Any]) -> dict[str, Any]:
    run = work / f"train-{name}"
    if not (run / "result.json").exists():
        dmc("train", source, "--dataset", "digits", "--width", str(config["width"]),
            "--epochs", str(config["train_epochs"]), "-o", str(run))
    return json.loads((run / "result.json").read_text())


def run(config: dict[str, Any], work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    table_path = work / f"lut-w{config['width']:g}.json"
    if not table_path.exists():
        dmc("latency", "table", "proxyless_s5", "--width", str(config["width"]), "--repeats",
            str(config["table_repeats"]), "-o", str(table_path))
    table = load_latency_table(table_path)
    fastest, slowest = table_span(table)
    targets = {f"target{i}": fastest + f * (slowest - fastest) for i, f in enumerate(config["fractions"])}
    sources: dict[str, str] = {"no-cost": str(search(work, "no-cost", table_path, config, None))}
    for name, target in targets.items():
        sources[name] = str(search(work, name, table_path, config, target))
    for name, target in targets.items():  # the same targets met by the budgeted derivation (`dmc derive --cost-target`)
        sources[f"{name}-budget"] = derive_within(work, f"search-{name}", target)
        sources[f"no-cost-{name}-budget"] = derive_within(work, "search-no-cost", target, table_path)
    sources.update({name: name for name in PUBLISHED})

    rows: list[dict[str, Any]] = []
    runs = []
    for name, source in sources.items():
        result = train(work, name, source, config)
        network = network_from_source(source, width=config["width"], num_classes=1000).network
        run_name = "no-cost" if name.startswith("no-cost") else name.removesuffix("-budget")
        history_file = work / f"search-{run_name}" / "history.jsonl"
        history = [json.loads(line) for line in history_file.open()] if name not in PUBLISHED else []
        target = next((t for key, t in targets.items() if re.fullmatch(rf"(no-cost-)?{key}(-budget)?", name)), None)
        rows.append({
            "name": name, "kind": kind_of(name), "target_ms": target, "layers": list(network.genotype.layers),
            "test_acc": result["test_acc"], "parameters_digits": result["parameters"],
            "predicted_ms": table.network_ms(network.genotype.layers) if priced(network, table) else None,
            "search_best_val_acc": max((h["val_acc"] for h in history), default=None),
            "expected_ms_last_epoch": history[-1].get("expected_cost") if history else None,
            "imagenet_top1_published": IMAGENET_TOP1.get(name)})
        runs.append(network_runner(network, table.runtime, table.threads, table.batch, table.image_size,
                                   work / f"{name}.onnx"))
    with torch_threads(table.threads), torch.inference_mode():
        times = interleaved_times_ms(runs, config["repeats"])
    for row, t in zip(rows, times):
        row.update(measured_ms=statistics.median(t), measured_min_ms=min(t), measured_max_ms=max(t))
        if row["predicted_ms"] is not None:
            row["predicted_error"] = row["predicted_ms"] / row["measured_ms"] - 1
        if row["target_ms"] is not None:
            row["measured_vs_target"] = row["measured_ms"] / row["target_ms"] - 1
    return {"config": config, "cpu": cpu_model(), "torch": torch.__version__, "table": table.to_dict()["measured_on"],
            "fastest_ms": fastest, "slowest_ms": slowest, "targets_ms": targets, "rows": rows}


def kind_of(name: str) -> str:
    if name in PUBLISHED:
        return "published"
    if name.startswith("no-cost-"):
        return "search without a cost, budgeted derivation"
    if name.endswith("-budget"):
        return "search for the target, budgeted derivation"
    return "search for the target, strongest candidates" if name != "no-cost" else "search without a cost"


def priced(network: Any, table: Any) -> bool:
    """Whether the table covers the network (mobilenet_v2's skeleton is not the space's)."""
    from dmc.exporters.latency_profile import check_network_fits
    from dmc.latency import LatencyTableError

    try:
        check_network_fits(network, table)
    except LatencyTableError:
        return False
    return True


STYLES = {"published": ("s", "tab:gray"), "search without a cost": ("D", "black"),
          "search for the target, strongest candidates": ("v", "tab:red"),
          "search for the target, budgeted derivation": ("o", "tab:blue"),
          "search without a cost, budgeted derivation": ("^", "tab:green")}


def picture(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for target in result["targets_ms"].values():
        ax.axvline(target, color="0.8", lw=1, ls="--", zorder=0)
    for kind, (marker, color) in STYLES.items():
        rows = [r for r in result["rows"] if r["kind"] == kind]
        for row in rows:
            x, y = row["measured_ms"], 100 * row["test_acc"]
            ax.errorbar(x, y, xerr=[[x - row["measured_min_ms"]], [row["measured_max_ms"] - x]], fmt=marker,
                        color=color, capsize=2, label=kind if row is rows[0] else None)
            if kind == "published":
                ax.annotate(row["name"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"measured latency, ms (onnxruntime, 1 thread, batch 1, 224 px, width {result['config']['width']:g});"
                  " dashed: the targets")
    ax.set_ylabel("digits top-1 test accuracy, %")
    ax.set_title("proxyless_s5 searched for three latency targets, and the published networks", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny settings (writes into --work only)")
    parser.add_argument("--work", type=Path, default=Path("runs/latency-search"))
    args = parser.parse_args()
    config = SMOKE if args.smoke else FULL
    start = time.perf_counter()
    result = run(config, args.work)
    result["seconds"] = time.perf_counter() - start
    out = args.work if args.smoke else Path(__file__).parent / "results"
    stem = "latency_search-" + re.sub(r"[^a-z0-9]+", "-", result["cpu"].lower()).strip("-")[:24]
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    picture(result, out / f"{stem}.png")
    print(f"\n{'network':<24}{'target':>8}{'predicted':>10}{'measured (range)':>24}{'vs target':>10}{'test acc':>9}")
    for row in result["rows"]:
        def ms(v: float | None) -> str:
            return f"{v:.3f}" if v is not None else "-"
        span = f"{row['measured_ms']:.3f} ({row['measured_min_ms']:.2f}-{row['measured_max_ms']:.2f})"
        vs = f"{100 * row['measured_vs_target']:+.1f}%" if "measured_vs_target" in row else "-"
        print(f"{row['name']:<24}{ms(row['target_ms']):>8}{ms(row['predicted_ms']):>10}{span:>24}{vs:>10}"
              f"{100 * row['test_acc']:>8.1f}%")
    print(f"wrote {out / stem}.json and .png ({result['seconds'] / 60:.0f} min)")


if __name__ == "__main__":
    main()
