"""`dmc bench nb201`: a cell's NAS-Bench-201 results from NATS-Bench's topology archive."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dmc.cli.app import command, sub_app

bench_app = sub_app("bench", "Look up architectures in NAS benchmarks (archives are read as data, never run).")


def _accuracy(acc) -> str:
    return f"{acc.mean:.2f} ± {acc.std:.2f}"


def _seeds(row) -> str:
    valid, test = len(row.valid.seeds), len(row.test.seeds)
    return str(valid) if valid == test else f"{valid}/{test}"


def format_result(result) -> str:
    """The readable table of an :class:`NB201Result`."""
    lines = [f"NAS-Bench-201 #{result.index}: {result.arch}",
             f"top-1 % after {result.epochs} epochs, mean ± std over seeds (valid/test seeds if they differ)",
             f"{'dataset':<15} {'valid %':>14} {'test %':>14} {'params MB':>9} {'FLOPs M':>8} {'latency ms':>10} "
             f"{'seeds':>5}"]
    for row in result.datasets:
        latency = f"{row.latency_s * 1000:.2f}" if row.latency_s is not None else "-"
        lines.append(f"{row.label:<15} {_accuracy(row.valid):>14} {_accuracy(row.test):>14} {row.params_mb:>9.3f} "
                     f"{row.flops_m:>8.2f} {latency:>10} {_seeds(row):>5}")
    return "\n".join(lines)


@command(bench_app, name="nb201")
def nb201(
    arch: str = typer.Argument(..., help="A NAS-Bench-201 string (quote it: '|nor_conv_3x3~0|+|...|'), an nb201 "
                                         "genotype file (e.g. from `dmc derive`), or an archive index."),
    data: Path = typer.Option(..., "--data", help="NATS-Bench's topology archive, extracted: the "
                                                  "NATS-tss-v1_0-3ffb9-simple folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """NAS-Bench-201 results of a cell after 200 epochs (the DARTS- paper's Table 3): CIFAR-10, CIFAR-100 and
    ImageNet16-120 valid and test accuracy (mean and std over seeds), params, FLOPs and latency."""
    from dmc.api import NB201Bench, resolve_nb201_arch

    bench = NB201Bench(data)
    result = bench.lookup(resolve_nb201_arch(arch))
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_result(result))
