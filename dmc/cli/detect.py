"""`dmc detect config|train|test|export`: RetinaNet with a dmc backbone on MMDetection, and as one ONNX model."""

from __future__ import annotations

from pathlib import Path

import typer

from dmc.cli.app import command, sub_app
from dmc.errors import InvalidInputError

detect_app = sub_app("detect", "RetinaNet detectors with a dmc backbone (MMDetection). Python configs (.py) are "
                                "code, run as mmengine runs them: use only configs you trust; YAML and JSON configs "
                                "are read as data.")


def _pair(text: str) -> tuple[int, int]:
    try:
        a, _, b = text.partition(",")
        return int(a), int(b or a)
    except ValueError:
        raise InvalidInputError(f"--image-scale {text!r} is not W,H", "e.g. --image-scale 1333,800") from None


def _milestones(text: str | None, epochs: int) -> tuple[int, ...]:
    if not text:
        return (8, 11) if epochs == 12 else (max(1, epochs * 2 // 3), max(1, epochs * 11 // 12))
    try:
        return tuple(int(m) for m in text.split(","))
    except ValueError:
        raise InvalidInputError(f"--milestones {text!r} is not a comma-separated list of epochs",
                                "e.g. --milestones 8,11") from None


@command(detect_app, name="config")
def config(
    source: str = typer.Argument(..., help="Genotype (file or published name: cell, e.g. DARTS_V2, or chain, e.g. "
                                           "FairNAS_A, mobilenet_v2) or a `dmc train` / `dmc compile` network file "
                                           "(its weights pretrain the backbone)."),
    out: Path = typer.Option(..., "--out", "-o", help="Config file to write (.py)."),
    data_root: str = typer.Option("data/coco", help="COCO-format dataset folder."),
    train_ann: str = typer.Option(None, help="Train annotations (in data root) [default: COCO's "
                                             "annotations/instances_train2017.json, or the demo set's]."),
    val_ann: str = typer.Option(None, help="Val annotations (in data root) [default: COCO's "
                                           "annotations/instances_val2017.json, or the demo set's]."),
    train_img: str = typer.Option(None, help="Train image folder (in data root) [default: train2017/, or the "
                                             "demo set's train/]."),
    val_img: str = typer.Option(None, help="Val image folder (in data root) [default: val2017/, or the demo set's "
                                           "val/]."),
    channels: int = typer.Option(None, help="Cell backbones: channels (default: the checkpoint's, else 16)."),
    layers: int = typer.Option(None, help="Cell backbones: cells (default: the checkpoint's, else 8)."),
    width: float = typer.Option(None, help="Chain backbones: width multiplier (default: the checkpoint's, else 1)."),
    image_scale: str = typer.Option("1333,800", help="Resize scale W,H (aspect ratio kept)."),
    epochs: int = typer.Option(12, help="Epochs (1x schedule: 12)."),
    milestones: str = typer.Option(None, help="LR drop epochs [8,11 for 12 epochs; else 2/3 and 11/12 of them]."),
    batch_size: int = typer.Option(2, help="Images per GPU (the paper: 16 = 8 GPUs x 2)."),
    lr: float = typer.Option(0.01, help="Learning rate for the total batch of 16."),
    warmup_iters: int = typer.Option(500, help="Linear warm-up iterations."),
    grad_clip: float = typer.Option(35.0, help="Gradient-norm clipping; 0 turns it off."),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="Random horizontal flips (off for digits, text, ...)."),
    neck_channels: int = typer.Option(256, help="FPN and head channels."),
    head_convs: int = typer.Option(4, help="Stacked convs in the RetinaNet head."),
    num_workers: int = typer.Option(2, help="Data loader workers per GPU."),
    work_dir: str = typer.Option("work_dirs/retinanet_dmc", help="Where training writes checkpoints and logs."),
) -> None:
    """Write a flat RetinaNet + FPN config for a dmc backbone, cell or chain network (the stages at strides 8, 16,
    32 feed the FPN; channels from feature_info)."""
    from dmc.detection.config import DetectionConfig, write_retinanet_config

    cfg = DetectionConfig(data_root=data_root, train_ann=train_ann, val_ann=val_ann, train_img=train_img,
                          val_img=val_img, channels=channels, layers=layers, width=width,
                          image_scale=_pair(image_scale),
                          epochs=epochs, milestones=_milestones(milestones, epochs), batch_size=batch_size, lr=lr,
                          warmup_iters=warmup_iters, grad_clip=grad_clip or None, flip=flip,
                          neck_channels=neck_channels, head_convs=head_convs, num_workers=num_workers,
                          work_dir=work_dir)
    path = write_retinanet_config(source, out, cfg)
    typer.echo(f"wrote {path}; train it with: dmc detect train {path}")


@command(detect_app, name="train")
def train(
    config: Path = typer.Argument(..., help="An mmdet config (e.g. from `dmc detect config`): a .py config is code "
                                            "(use only configs you trust); a .yaml/.json config is data."),
    work_dir: Path = typer.Option(None, help="Override the config's work_dir."),
    resume: bool = typer.Option(False, help="Continue from the latest checkpoint in the work dir."),
    resume_from: Path = typer.Option(None, help="Continue from this checkpoint."),
    launcher: str = typer.Option("none", help="none | pytorch | slurm | mpi (multi-GPU via torchrun etc.)."),
) -> None:
    """Train a detector on mmengine's Runner (COCO bbox mAP on the val set every epoch).

    The config's annotation files and images are checked before training starts.
    """
    from dmc.detection.runner import build_runner, training_summary

    runner = build_runner(config, work_dir, resume_from or resume, launcher=launcher)
    runner.train()
    typer.echo(training_summary(runner))


@command(detect_app, name="test")
def test(
    config: Path = typer.Argument(..., help="The training config."),
    checkpoint: Path = typer.Argument(..., help="A checkpoint from `dmc detect train`."),
    work_dir: Path = typer.Option(None, help="Override the config's work_dir."),
    launcher: str = typer.Option("none", help="none | pytorch | slurm | mpi."),
) -> None:
    """Evaluate a detector checkpoint (COCO bbox mAP); only checkpoints of this config's detector are accepted."""
    from dmc.detection.runner import evaluate

    metrics = evaluate(config, checkpoint, work_dir, launcher=launcher)
    for key, value in metrics.items():
        typer.echo(f"{key}: {value}")


@command(detect_app, name="export")
def export(
    config: Path = typer.Argument(..., help="The training config (a RetinaNet with a dmc backbone, as `dmc detect "
                                            "config` writes it)."),
    checkpoint: Path = typer.Argument(..., help="A checkpoint from `dmc detect train`."),
    onnx: Path = typer.Option(..., "--onnx", help="ONNX model to write; its report goes to OUT.json."),
    opset: int = typer.Option(None, help="ONNX opset (default: the exporter's)."),
    check: bool = typer.Option(True, "--check/--no-check", help="Check the model: onnxruntime against mmdet's "
                                                               "predict on the test images, mAP both ways, latency."),
    images: int = typer.Option(None, min=1, help="Check on at most this many test images [all]."),
    repeats: int = typer.Option(10, min=1, help="Timed runs per runtime at batch 1."),
    int8: bool = typer.Option(False, "--int8", help="Also write an int8 model (onnxruntime static quantization, QDQ, "
                                                   "the convolutions only) calibrated on the config's training "
                                                   "images, with both models' mAP and latency in the report."),
    int8_out: Path = typer.Option(None, "--int8-out", help="Where --int8 writes the int8 model [OUT.int8.onnx, "
                                                           "e.g. det.int8.onnx]."),
    calibration_images: int = typer.Option(None, min=1, max=100_000,
                                           help="Training images --int8 calibrates on [300, or all if fewer]."),
) -> None:
    """Export the whole detector (backbone, FPN, head, box decoding, NMS) as one ONNX model and prove onnxruntime
    gives mmdet's detections; with --int8 also an int8 model of it, measured against it."""
    from dmc.detection.onnx_export import export_detector
    from dmc.exporters.onnx import report_path

    report = export_detector(config, checkpoint, onnx, opset=opset, check=check, images=images, repeats=repeats,
                             int8=int8, int8_out=int8_out, calibration_images=calibration_images)
    k = report["postprocessing"]["max_per_img"]
    typer.echo(f"wrote {onnx} (opset {report['opset']}): inputs input [batch, 3, height, width], image_size "
               f"[batch, 2]; outputs dets [batch, {k}, 5], labels [batch, {k}]")
    if not check:
        typer.echo("not checked (--no-check)")
    else:
        parity, maps, timing = report["parity"], report["map"], report["latency_ms_batch1"]
        typer.echo(f"onnxruntime vs mmdet predict on {parity['images']} images: {parity['detections']} detections "
                   f"paired, max box diff {parity['max_box_abs_diff']:.1e} px, max score diff "
                   f"{parity['max_score_abs_diff']:.1e}; batch of {report['dynamic_batch']['batch']}: same detections")
        threads = f"{timing['threads']} thread{'s' if timing['threads'] > 1 else ''}"
        typer.echo(f"bbox mAP: mmdet {_score(maps['mmdet'])}, onnxruntime {_score(maps['onnxruntime'])}; latency at "
                   f"batch 1, {threads}, median of {timing['repeats']}: onnxruntime {timing['onnxruntime_ms']:.2f} ms, "
                   f"PyTorch (mmdet predict) {timing['pytorch_ms']:.2f} ms")
    if "int8" in report:
        typer.echo(_int8_line(report["int8"]))
    typer.echo(f"report: {report_path(onnx)}")


def _int8_line(section: dict) -> str:
    maps, latency = section["map"], section["latency_ms"]
    drop = "" if maps["drop"] is None else f" (drop {maps['drop']:+.3f})"
    return (f"int8: wrote {section['model']} (convolutions quantized, calibrated on {section['calibration']['images']} "
            f"training images); bbox mAP on {maps['images']} test images {_score(maps['fp32'])} fp32 -> "
            f"{_score(maps['int8'])} int8{drop}; latency at batch 1, {latency['threads']} thread"
            f"{'s' if latency['threads'] > 1 else ''}: "
            f"{latency['fp32']['median_ms']:.2f} -> {latency['int8']['median_ms']:.2f} ms ({latency['speedup']:.2f}x)")


def _score(value: float | None) -> str:
    return "none (no detections)" if value is None else f"{value:.3f}"
