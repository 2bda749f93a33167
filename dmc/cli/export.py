"""`dmc export --onnx`: a network file, training checkpoint or genotype -> a checked ONNX model (and, with `--int8`,
an int8 model of it measured against it)."""

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
    int8: bool = typer.Option(False, "--int8", help="Also write an int8 model (onnxruntime static quantization, QDQ) "
                                                   "and measure it against the fp32 one; needs --calibration."),
    calibration: str = typer.Option(None, metavar="DATA",
                                    help="--int8's data, as `dmc train --dataset` takes it (digits | cifar10:PATH | "
                                         "cifar100:PATH | folder:PATH): training images calibrate, test images "
                                         "measure top-1 accuracy."),
    calibration_images: int = typer.Option(None, min=1, max=100_000,
                                           help="Training images --int8 calibrates on [300]."),
    int8_out: Path = typer.Option(None, "--int8-out", help="Where --int8 writes the int8 model [OUT.int8.onnx "
                                                           "beside --onnx OUT.onnx]."),
    style: str = Style, channels: int = Channels, layers: int = Layers, width: float = Width, classes: int = Classes,
) -> None:
    """Export a cell or chain network to ONNX and prove onnxruntime computes what PyTorch computes."""
    from dmc.exporters.onnx import TOLERANCE, export_onnx, report_path

    _check_int8_options(int8, calibration, calibration_images, int8_out, features)
    outputs = [onnx, report_path(onnx)]
    if int8:
        from dmc.exporters.classifier_int8 import default_int8_path

        outputs.append(int8_out or default_int8_path(onnx))
    refuse_overwriting_inputs(outputs, [source if Path(source).exists() else None])
    loaded = network_from_source(source, **build_overrides(style, channels, layers, classes, width=width))
    data = loaded.data or {}
    options = dict(input_size=input_size or data.get("image_size"), dynamic_batch=dynamic_batch, opset=opset,
                   features=_indices(features, len(loaded.network.feature_info)), mean=data.get("mean", (0.0,) * 3),
                   std=data.get("std", (1.0,) * 3), allow_random=allow_random, check=check, runs=runs)
    if int8:
        from dmc.exporters.classifier_int8 import CALIBRATION_IMAGES, export_onnx_int8

        report = export_onnx_int8(loaded.network, onnx, calibration, int8_out=int8_out,
                                  calibration_images=calibration_images or CALIBRATION_IMAGES, **options)
    else:
        report = export_onnx(loaded.network, onnx, **options)
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
    if "int8" in report:
        typer.echo(_int8_line(report["int8"]))
    typer.echo(f"report: {report_path(onnx)}")


def _check_int8_options(int8: bool, calibration: str | None, images: int | None, out: Path | None,
                        features: str | None) -> None:
    if int8 and calibration is None:
        raise InvalidInputError("--int8 needs calibration data", "pass --calibration DATA, e.g. --calibration digits "
                                "(the data the network was trained on)")
    if int8 and features is not None:
        raise InvalidInputError("--int8 quantizes classifiers, --features exports feature maps",
                                "drop --features, or export the feature maps without --int8")
    given = [flag for flag, value in (("--calibration", calibration), ("--calibration-images", images),
                                      ("--int8-out", out)) if value is not None]
    if not int8 and given:
        raise InvalidInputError(f"{given[0]} applies to int8 export", f"add --int8, or drop {given[0]}")


def _int8_line(section: dict) -> str:
    accuracy, latency = section["accuracy"], section["latency_ms"]
    threads = f"{latency['threads']} thread{'s' if latency['threads'] > 1 else ''}"
    return (f"int8: wrote {section['model']} (calibrated on {section['calibration']['images']} "
            f"{section['calibration']['dataset']} training images); top-1 on {accuracy['images']} test images "
            f"{accuracy['fp32_top1']:.3f} fp32 -> {accuracy['int8_top1']:.3f} int8 (drop {accuracy['drop']:+.3f}); "
            f"latency at batch {latency['batch']}, {threads}: {latency['fp32']['median_ms']:.3f} -> "
            f"{latency['int8']['median_ms']:.3f} ms ({latency['speedup']:.2f}x)")
