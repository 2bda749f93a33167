"""How good is a latency table? Predicted vs measured end-to-end latency of random chain networks (issue 32).

    python benchmarks/latency_predictor.py            # smoke: torch, narrow and small, under a minute
    python benchmarks/latency_predictor.py --full     # both S5 spaces, widths 0.5 and 1, 224 px, 1 and 2 threads

For every (space, width, threads): the latency table is measured (`measure_latency_table`, in --work, so that a
rerun reuses it), random networks (one seeded random choice per layer among the table's candidates) are built and
timed whole (exported as `dmc export` exports, in the table's session; interleaved: every round runs every network
once, starting one further along) and compared with two predictors: the plain sum of the table's medians
(`table.plain_network_ms`) and the table's corrected cost (`table.network_ms`: the part overhead, fitted on the
table's own calibration networks, counted once). Reported per group and overall: the share of networks within +-10%,
the mean absolute percentage error and Spearman's rank correlation. --full writes the raw numbers to
benchmarks/results/latency_predictor-<cpu>.json.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from dmc.compiler import BuildArgs, CompiledNetwork
from dmc.exporters.latency import cpu_model, interleaved_times_ms, measure_latency_table, ort_session, torch_threads
from dmc.families.chain.genotype import ChainGenotype
from dmc.space import load_space

SMOKE = {"runtime": "torch", "spaces": ["proxyless_s5", "fbnet_s5"], "widths": [0.25], "image_size": 32,
         "threads": [1], "networks": 4, "repeats": 5, "table_repeats": 5}
FULL = {"runtime": "onnxruntime", "spaces": ["proxyless_s5", "fbnet_s5"], "widths": [0.5, 1.0], "image_size": 224,
        "threads": [1, 2], "networks": 13, "repeats": 30, "table_repeats": 20}
SEED = 1000
"""Networks' seed (the tables' calibration networks use seed 0)."""


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation (ties get their mean rank)."""
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else float("nan")


def metrics(predicted: list[float], measured: list[float]) -> dict[str, float]:
    errors = [p / m - 1 for p, m in zip(predicted, measured)]
    return {"networks": len(errors), "within_10pct": sum(abs(e) <= 0.10 for e in errors) / len(errors),
            "mape": statistics.fmean(abs(e) for e in errors), "mean_error": statistics.fmean(errors),
            "spearman": spearman(predicted, measured)}


def run(config: dict[str, Any], work: Path) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    tables: list[dict[str, Any]] = []
    for space_name in config["spaces"]:
        for width in config["widths"]:
            space = load_space(space_name).with_macro(width=width)
            rng = random.Random(f"{SEED}-{space_name}-{width}")
            chosen = [tuple(rng.choice(ops) for ops in space.layer_candidates) for _ in range(config["networks"])]
            networks = [CompiledNetwork(ChainGenotype(layers, space.macro, space.name, space.content_hash),
                                        BuildArgs(space.macro, 1000)).eval() for layers in chosen]
            exported: list[Path] = []
            if config["runtime"] == "onnxruntime":
                from dmc.exporters.onnx import export_onnx

                for i, network in enumerate(networks):
                    path = work / f"{space_name}-{width:g}-net{i}.onnx"
                    export_onnx(network, path, input_size=config["image_size"], check=False)
                    exported.append(path)
            for threads in config["threads"]:
                start = time.perf_counter()
                table = measure_latency_table(space_name, width=width, image_size=config["image_size"],
                                              threads=threads, runtime=config["runtime"],
                                              repeats=config["table_repeats"],
                                              out_path=work / f"lut-{space_name}-{width:g}-{threads}.json")
                tables.append({"space": space_name, "width": width, "threads": threads,
                               "part_overhead": table.part_overhead.to_dict() if table.part_overhead else None,
                               "fixed_ms": table.fixed_ms, "seconds": time.perf_counter() - start})
                example = torch.randn(1, 3, config["image_size"], config["image_size"])
                if exported:
                    sessions = [ort_session(path, threads) for path in exported]
                    runs = [lambda s=s: s.run(None, {"input": example.numpy()}) for s in sessions]
                else:
                    runs = [lambda n=n: n(example) for n in networks]
                with torch_threads(threads), torch.inference_mode():
                    times = interleaved_times_ms(runs, config["repeats"])
                for layers, t in zip(chosen, times):
                    rows.append({"space": space_name, "width": width, "threads": threads, "layers": list(layers),
                                 "measured_ms": statistics.median(t), "measured_min_ms": min(t),
                                 "measured_max_ms": max(t), "plain_ms": table.plain_network_ms(layers),
                                 "corrected_ms": table.network_ms(layers)})
                print(f"  {space_name} width {width:g}, {threads} thread(s): table "
                      f"{tables[-1]['seconds']:.0f} s, part overhead {table.part_overhead_ms:.4f} ms", flush=True)
    return {"rows": rows, "tables": tables}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = {"all": rows}
    for row in rows:
        groups.setdefault(f"{row['space']} w{row['width']:g} t{row['threads']}", []).append(row)
    return {name: {kind: metrics([r[f"{kind}_ms"] for r in group], [r["measured_ms"] for r in group])
                   for kind in ("plain", "corrected")} for name, group in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full configuration; writes the raw JSON")
    parser.add_argument("--work", type=Path, help="folder for the tables and models (reused) [a temporary one]")
    args = parser.parse_args()
    config = FULL if args.full else SMOKE
    with tempfile.TemporaryDirectory(prefix="dmc-predictor-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        print(f"{'full' if args.full else 'smoke'} run: {json.dumps(config)}", flush=True)
        start = time.perf_counter()
        result = run(config, work)
    table = summary(result["rows"])
    print(f"\n{'group':<26}{'predictor':<11}{'n':>4}{'within 10%':>12}{'MAPE':>8}{'mean err':>10}{'Spearman':>10}")
    for name, kinds in table.items():
        for kind, m in kinds.items():
            print(f"{name:<26}{kind:<11}{m['networks']:>4}{m['within_10pct']:>12.0%}{m['mape']:>8.1%}"
                  f"{m['mean_error']:>+10.1%}{m['spearman']:>10.3f}")
    print(f"\n{time.perf_counter() - start:.0f} s on {cpu_model()}")
    if args.full:
        slug = re.sub(r"[^a-z0-9]+", "-", cpu_model().lower()).strip("-")
        out = Path(__file__).parent / "results" / f"latency_predictor-{slug}.json"
        out.write_text(json.dumps({"config": config, "cpu": cpu_model(), "torch": torch.__version__,
                                   "seconds": time.perf_counter() - start, "summary": table, **result},
                                  indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
