"""`dmc export --onnx`: a network file, training checkpoint or genotype -> a checked ONNX model."""

from __future__ import annotations

from pathlib import Path

import typer

from dmc.api import MAX_INPUT_SIZE, network_from_source, refuse_overwriting_inputs
from dmc.cli.app import command
from dmc.cli.build_options import Channels, Classes, Layers, Style, Width, build_overrides
from dmc.errors import InvalidInputError


def _indices(text: str | None, stages: int) -> list[int] | None:
    if text is None:
        return None
    if text == "all":
        return list(range(stages))
    try:
        return [int(i) for i in text.split(",")]
    except ValueError:
        raise InvalidInputError(f"--features {text!r} is not 'all' or a comma-separated list of stage indices",
                                "e.g. --features 1,2,3") from None


@command(name="export")
def export_command(
    source: str = typer.Argument(..., help="A `dmc train` checkpoint or `dmc compile` file (weights included), "
                                           "or a genotype, cell or chain (random weights; build options apply: "
                                           "--channels/--layers for cell networks, --width for chain networks)."),
    onnx: Path = typer.Option(..., "--onnx", help="ONNX model to write; its parity report goes to OUT.json."),
    input_size: int = typer.Option(None, min=1, max=MAX_INPUT_SIZE,
                                   help="Input height and width (default: the training data's, else "
                                        "32; imagenet and chain networks 224)."),
    dynamic_batch: bool = typer.Option(True, "--dynamic-batch/--static-batch", help="Batch dimension dynamic."),
    opset: int = typer.Option(None, help="ONNX opset, 18 to 23 (default: the exporter's)."),
    features: str = typer.Option(None, help="Export these stage outputs ('all' or e.g. 1,2,3) instead of logits."),
    allow_random: bool = typer.Option(False, help="Export networks with 'noise' ops (no parity check)."),
    check: bool = typer.Option(True, "--check/--no-check", help="Check the model and compare with onnxruntime."),
    runs: int = typer.Option(3, help="Random inputs per batch size in the parity check (at least 1)."),
    style: str = Style, channels: int = Channels, layers: int = Layers, width: float = Width, classes: int = Classes,
) -> None:
    """Export a cell or chain network to ONNX and prove onnxruntime computes what PyTorch computes."""
    from dmc.exporters.onnx import TOLERANCE, export_onnx, report_path

    refuse_overwriting_inputs([onnx, report_path(onnx)], [source if Path(source).exists() else None])
    loaded = network_from_source(source, **build_overrides(style, channels, layers, classes, width=width))
    data = loaded.data or {}
    report = export_onnx(
        loaded.network, onnx, input_size=input_size or data.get("image_size"), dynamic_batch=dynamic_batch,
        opset=opset, features=_indices(features, len(loaded.network.feature_info)),
        mean=data.get("mean", (0.0,) * 3), std=data.get("std", (1.0,) * 3), allow_random=allow_random,
        check=check, runs=runs)
    typer.echo(f"wrote {onnx} (opset {report['opset']}, outputs: {', '.join(report['outputs'])})")
    parity = report["parity"]
    if parity:
        typer.echo(f"onnx.checker: {report['onnx_checker']}; onnxruntime vs PyTorch over batches "
                   f"{parity['batches']} x {parity['runs_per_batch']} inputs: max abs error "
                   f"{parity['max_abs_error']:.2e}, max rel error {parity['max_rel_error']:.2e} "
                   f"(tolerance {TOLERANCE:.0e}): ok")
    elif not check:
        typer.echo("not checked (--no-check)")
    else:
        typer.echo("onnx.checker passed; parity not checked: the outputs are random ('noise' ops)")
    typer.echo(f"report: {report_path(onnx)}")
