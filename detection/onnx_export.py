"""A trained RetinaNet with a dmc backbone as ONE ONNX model, proven against MMDetection's own ``predict``.

    report = export_detector("retinanet_dmc.py", "work_dirs/digits/epoch_40.pth", "det.onnx")
    report["parity"]["max_box_abs_diff"], report["map"]["onnxruntime"], report["map"]["mmdet"]

The model holds everything from the preprocessed batch to the final detections: the dmc backbone, the FPN, RetinaHead,
anchors, box decoding, score threshold, per-level top-k, class-aware NMS (the standard ``NonMaxSuppression`` op) and
the ``max_per_img`` best (:class:`dmc.detection.onnx_graph.DetectorGraph`). Inputs (:data:`INPUTS`): ``input``
[batch, 3, height, width] float32, as mmdet's data preprocessor hands it to the model (batch, height and width
dynamic), and ``image_size`` [batch, 2] int64, each image's height and width before padding, to which boxes are
clipped as mmdet clips them (to ``img_shape``; pass the padded size to clip to the input). Outputs (:data:`OUTPUTS`)
``dets`` [batch, K, 5] (x1, y1, x2, y2, score in the input's pixels) and ``labels`` [batch, K] int64 with K =
``test_cfg.max_per_img``, padded with score 0 and label -1. The model's metadata holds the preprocessing (mean, std,
channel order, the Resize, padding), the class names, the post-processing settings and dmc's version; the report
(``det.onnx.json``, see :func:`dmc.exporters.onnx.report_path`) holds the checks.

mmdeploy is not used: mmdeploy 1.3.1 requires protobuf <= 3.20.2 while the pinned onnx 1.23.2 requires protobuf >=
6.31.1 (pip cannot install both), and it exports through the TorchScript exporter, deprecated since torch 2.9. The
model is exported with ``torch.onnx.export(dynamo=True)`` as :mod:`dmc.exporters.onnx` exports networks; NMS enters
the graph as a custom op translated to ``NonMaxSuppression`` (:mod:`dmc.detection.onnx_nms`).

The check (``check=True``) runs the config's test pipeline and data preprocessor on its test images (at most
``images``) and compares onnxruntime with ``model.predict(..., rescale=False)`` per image
(:mod:`dmc.detection.onnx_check`): the same count, labels, boxes within 1e-3 px or IoU >= 0.999, scores within 1e-4.
It also computes the COCO bbox mAP both ways (mmdet's as ``dmc detect test`` computes it) and requires them equal to 3
decimals, checks a batch of 2, and times both at batch 1. The model and the report are written only when everything
before succeeded (atomically); a failed comparison still writes both, then raises
:class:`dmc.exporters.onnx.ParityError`.

With ``int8=True`` the checked model is also quantized to int8 (its convolutions only; the post-processing stays
float), calibrated on the config's training images and measured against the fp32 model on the same test images
(:mod:`dmc.detection.onnx_int8`): the report's ``int8`` section.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch
from mmengine.config import Config

from dmc.detection.onnx_check import check_batch, check_detector, latency
from dmc.detection.onnx_graph import DetectorGraph
from dmc.detection.onnx_inputs import (
    INPUT_NAME,
    SIZE_NAME,
    class_names,
    load_detector,
    preprocessed_samples,
    preprocessing,
)
from dmc.detection.onnx_int8 import (
    CALIBRATION_IMAGES,
    check_calibration_split,
    check_int8_request,
    default_int8_path,
    int8_section,
)
from dmc.detection.onnx_nms import ONNX_TRANSLATIONS
from dmc.errors import InvalidInputError, NamedSettingsError, SettingError
from dmc.exporters.int8 import write_report_naming_int8
from dmc.exporters.latency import ort_session
from dmc.exporters.onnx import ParityError, check_opset, default_opset, exported_model, report_path
from dmc.io import atomic_write, atomic_write_text
from dmc.outputs import refuse_overwriting_inputs
from dmc.version import __version__

__all__ = ["INPUTS", "OUTPUTS", "export_detector"]

INPUTS = {
    INPUT_NAME: "[batch, 3, height, width] float32: the images as mmdet's data preprocessor hands them to the model "
                "(see dmc.preprocessing); batch, height and width dynamic",
    SIZE_NAME: "[batch, 2] int64: each image's height and width before padding (mmdet's img_shape); boxes are "
               "clipped to it",
}
"""The exported detector's inputs."""
OUTPUTS = {
    "dets": "[batch, K, 5] float32: x1, y1, x2, y2, score, in the input's pixels (divide by the Resize's scale "
            "factor for the original image's); best first; rows past the detections have score 0 and a zero box",
    "labels": "[batch, K] int64: class index (dmc.classes), -1 in the padding rows",
}
"""The exported detector's outputs, K = ``test_cfg.max_per_img``."""


def _postprocessing(graph: DetectorGraph) -> dict[str, Any]:
    return {"score_thr": graph.score_thr, "nms_pre": graph.nms_pre, "iou_threshold": graph.iou_threshold,
            "max_per_img": graph.max_per_img, "min_bbox_size": graph.min_bbox_size,
            "nms": "class-aware, ONNX NonMaxSuppression"}


def _metadata(cfg: Config, graph: DetectorGraph) -> dict[str, str]:
    backbone = {k: v for k, v in cfg.model.backbone.items()}
    return {
        "dmc.version": __version__,
        "dmc.detector": json.dumps({"type": "RetinaNet", "backbone": backbone, "num_classes": graph.num_classes}),
        "dmc.inputs": json.dumps(INPUTS),
        "dmc.preprocessing": json.dumps(preprocessing(cfg)),
        "dmc.classes": json.dumps(class_names(cfg)),
        "dmc.postprocessing": json.dumps(_postprocessing(graph)),
        "dmc.outputs": json.dumps(OUTPUTS),
    }


def _example(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs the exporter traces: batch 2, height and width different (else the exporter may tie them) and
    large enough that no feature map is 1 pixel (a size of 1 would be fixed in the graph)."""
    stride = int(max(max(s) for s in model.bbox_head.prior_generator.strides))
    height, width = 4 * stride, 5 * stride
    return torch.randn(2, 3, height, width), torch.tensor([[height, width], [height - 7, width - 9]])


def _export(graph: DetectorGraph, cfg: Config, tmp: Path, opset: int | None) -> onnx.ModelProto:
    """Exports ``graph`` into ``tmp`` with the metadata; returns the model."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = {"x": {0: batch, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}, "image_size": {0: batch}}
    raw = tmp.with_name("raw.onnx")
    with warnings.catch_warnings():  # that both inputs' first axis is the batch is what is meant
        warnings.filterwarnings("ignore", message=".*axis name: batch will not be used.*")
        torch.onnx.export(graph, _example(graph.model), str(raw), dynamo=True, input_names=list(INPUTS),
                          output_names=list(OUTPUTS), dynamic_shapes=dynamic, opset_version=opset,
                          custom_translation_table=ONNX_TRANSLATIONS, verbose=False)
    model = exported_model(raw, opset, _metadata(cfg, graph))
    _name_dims(model)
    onnx.save(model, str(tmp))
    return model


def _name_dims(model: onnx.ModelProto) -> None:
    """The input's dynamic sizes named batch, height and width (the exporter names them after its symbols)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, name in zip(dims, ("batch", None, "height", "width")):
        if name and dim.dim_param:
            old = dim.dim_param
            for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
                for d in value.type.tensor_type.shape.dim:
                    if d.dim_param == old:
                        d.dim_param = name


def _check_arguments(opset: int | None, images: int | None, repeats: int) -> None:
    check_opset(opset)
    if images is not None and images < 1:
        raise NamedSettingsError(f"images={images}: the check needs at least 1 image",
                                 "pass {images} 1 or more, or leave it out to check every test image")
    if repeats < 1:
        raise NamedSettingsError(f"repeats={repeats}: timing needs at least 1 run", "pass {repeats} 1 or more")


def export_detector(config: str | Path | Config, checkpoint: str | Path, out_path: str | Path, *,
                    opset: int | None = None, check: bool = True, images: int | None = None,
                    repeats: int = 10, int8: bool = False, int8_out: str | Path | None = None,
                    calibration_images: int | None = None) -> dict[str, Any]:
    """Exports the RetinaNet of ``config`` with the weights of ``checkpoint`` to ``out_path`` (see the module's
    docstring); returns the report, also written beside the model (``out_path + ".json"``).

    ``images``: check on at most this many test images (default: all); ``repeats``: timed runs per runtime.
    Refuses (one line) configs that are not a RetinaNet with a dmc backbone, and foreign or corrupt checkpoints.

    ``int8``: also an int8 model at ``int8_out`` (default ``det.int8.onnx`` beside ``det.onnx``), its convolutions
    quantized, calibrated on ``calibration_images`` (default 300) training images, measured against the fp32 model
    on the checked test images (:func:`dmc.detection.onnx_int8.int8_section`; the report's ``int8`` section); it
    needs the check.
    Nothing is half-written: an int8 file of an earlier export to that path is removed when the fp32 model is
    written, the int8 model is written only after it was quantized, checked and measured, and the report last; when
    a step of the int8 model fails, the fp32 model and its report (without ``int8``) stand.
    """
    path = Path(out_path)
    _check_arguments(opset, images, repeats)
    int8_path = (Path(int8_out) if int8_out is not None else default_int8_path(path)) if int8 else None
    if int8_path is None and (int8_out is not None or calibration_images is not None):
        given = "int8_out" if int8_out is not None else "calibration_images"
        raise SettingError(f"{{{given}}} applies to the int8 model", f"add {{int8}}, or drop {{{given}}}")
    if calibration_images is None:
        calibration_images = CALIBRATION_IMAGES
    if int8_path is not None:
        check_int8_request(path, int8_path, calibration_images, check)
    inputs = [checkpoint, config if isinstance(config, (str, Path)) else None]
    refuse_overwriting_inputs([path, report_path(path), *([int8_path] if int8_path else [])], inputs)
    cfg, model = load_detector(config, checkpoint)
    if int8_path is not None:
        check_calibration_split(cfg)
    graph = DetectorGraph(model, model.test_cfg).eval()
    with tempfile.TemporaryDirectory() as work:
        tmp = Path(work) / "model.onnx"
        exported = _export(graph, cfg, tmp, opset)
        report: dict[str, Any] = {
            "model": str(path), "dmc_version": __version__, "opset": default_opset(exported),
            "config": str(cfg.filename or config), "checkpoint": str(checkpoint),
            "inputs": INPUTS, "outputs": OUTPUTS, "postprocessing": _postprocessing(graph), "passed": None,
        }
        if check:
            onnx.checker.check_model(exported, full_check=True)
            report["onnx_checker"] = "passed (full check)"
            report.update(_check(tmp, model, cfg, images, repeats))
            report["passed"] = all(report[k]["passed"] for k in ("parity", "map", "dynamic_batch"))
        if int8_path is not None:  # a model of an earlier export: never beside a report that does not name it
            int8_path.unlink(missing_ok=True)
        atomic_write(path, lambda target: target.write_bytes(tmp.read_bytes()))
    atomic_write_text(report_path(path), json.dumps(report, indent=2) + "\n")
    if report["passed"] is False:
        failed = [k for k in ("parity", "map", "dynamic_batch") if not report[k]["passed"]]
        raise ParityError(f"onnxruntime differs from mmdet's predict ({', '.join(failed)}: see the report "
                          f"{report_path(path)}); the model is in {path}", "report it with the .json report attached")
    if int8_path is not None:
        report["int8"] = int8_section(cfg, path, int8_path, calibration_images=calibration_images, images=images,
                                      repeats=repeats)
        write_report_naming_int8(report, report_path(path), int8_path)
    return report


def _check(model_path: Path, model: torch.nn.Module, cfg: Config, images: int | None,
           repeats: int) -> dict[str, Any]:
    session = ort_session(model_path, threads=torch.get_num_threads())
    samples = preprocessed_samples(cfg, "test", images)
    first = next(samples, None)
    if first is None:
        raise InvalidInputError(f"{cfg.filename}: the test dataset has no images to check the export on",
                                "point test_dataloader at a dataset with images, or export without the check")
    result = check_detector(session, model, cfg, itertools.chain([first], samples))
    result["dynamic_batch"] = check_batch(session, first)
    result["latency_ms_batch1"] = latency(model_path, model, first, repeats)
    return result
