"""``dmc detect export --int8``: an int8 model of the exported detector, measured against the fp32 ONNX model.

    section = int8_section(cfg, "det.onnx", "det.int8.onnx", calibration_images=300)   # report["int8"]

Only the network's convolutions are quantized (:data:`OP_TYPES`: the backbone's, the FPN's and the head's; QDQ, int8
weights per output channel, uint8 activations per tensor, :func:`dmc.exporters.int8.quantize_int8`): the
post-processing (sigmoid, anchors, box decoding, TopK, gathers, NonMaxSuppression) stays float. Quantizing every op
onnxruntime can (its default) also quantizes the gathers, concatenations and sigmoids of the decoding, whose ranges a
detector's few high scores and its many anchors stretch: on the demo set's detector that left 0 to 7 detections per
image where fp32 has 100. The activation ranges are calibrated (MinMax) on the config's TRAINING images, preprocessed
exactly as the model's inputs (the test pipeline and the data preprocessor,
:func:`dmc.detection.onnx_inputs.preprocessed_batches`); both models' COCO bbox mAP is computed on the test images as
the export's check computes onnxruntime's, and both are timed at batch 1 on one thread, interleaved.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from mmengine.config import Config

from dmc.detection.onnx_check import (
    MAP_DECIMALS,
    box_iou,
    coco_map,
    coco_metric,
    det_result,
    onnx_detections,
    rescaled_boxes,
)
from dmc.detection.onnx_inputs import build_dataset, feeds, preprocessed_batches, preprocessed_samples
from dmc.errors import InvalidInputError, SettingError
from dmc.exporters.classifier_int8 import default_int8_path
from dmc.exporters.int8 import compare_latency_ms, op_counts, quantization_settings, quantize_int8
from dmc.exporters.latency import cpu_has_vnni, cpu_model, ort_session
from dmc.exporters.onnx import report_path
from dmc.io import atomic_write
from dmc.outputs import same_file

__all__ = ["CALIBRATION_IMAGES", "OP_TYPES", "check_calibration_split", "check_int8_request", "default_int8_path",
           "detection_agreement", "int8_section"]

CALIBRATION_IMAGES = 300
"""Training images the activation ranges are calibrated on by default (all, where the split holds fewer)."""
MAX_IMAGES = 100_000
OP_TYPES = ("Conv",)
"""The op types quantized: the convolutions of the backbone, the FPN and the head, nothing of the post-processing."""
TOP = 10
"""Agreement: the fp32 model's best detections per image that are looked for among the int8 model's."""
AGREEMENT_IOU = 0.5
"""Agreement: an int8 detection of the same label overlapping an fp32 one by more than this IoU finds it."""


def check_int8_request(path: str | Path, int8_path: str | Path, calibration_images: int, check: bool) -> None:
    """Refuses (one line, before anything is written) an int8 export that could not be measured or would overwrite
    the fp32 model or its report."""
    if not check:
        raise SettingError("{int8} measures the int8 model against the fp32 one on the test images, which "
                           "{check=False} skips", "drop {check=False} ({images} shortens the check), or export "
                                                  "without {int8}")
    if isinstance(calibration_images, bool) or not isinstance(calibration_images, int) or not (
            1 <= calibration_images <= MAX_IMAGES):
        raise SettingError(f"{{calibration_images}} must be an integer from 1 to {MAX_IMAGES}, got "
                           f"{calibration_images!r}")
    int8_path, path = Path(int8_path), Path(path)
    if int8_path.is_dir():
        raise InvalidInputError(f"{int8_path}: is a folder, not a file", "give the int8 model a file name")
    for other in (path, report_path(path)):
        if same_file(int8_path, other):
            raise SettingError(f"the int8 model {int8_path} would overwrite {other}, written by the same export",
                               "pass {int8_out} another path")


def check_calibration_split(cfg: Config) -> None:
    """Refuses a config without a training set to calibrate on (read from the config alone: the dataset is built
    when the fp32 model has been exported)."""
    loader = cfg.get("train_dataloader")
    if not isinstance(loader, dict) or not isinstance(loader.get("dataset"), dict):
        raise InvalidInputError(f"{cfg.filename}: the config has no train_dataloader with a dataset, whose images "
                                f"calibrate the int8 model", "export a config written by `dmc detect config`, or "
                                                             "export without --int8")


def int8_section(cfg: Config, fp32_path: str | Path, int8_path: str | Path, *,
                 calibration_images: int = CALIBRATION_IMAGES, images: int | None = None, repeats: int = 10,
                 threads: int = 1) -> dict[str, Any]:
    """Quantizes the detector at ``fp32_path`` (:data:`OP_TYPES` only) calibrated on the first
    ``calibration_images`` training images of ``cfg``, checks it (``onnx.checker``, full), measures both models'
    COCO bbox mAP on (at most ``images``) test images and both latencies at batch 1 on ``threads`` threads
    (``repeats`` interleaved runs), and only then writes it to ``int8_path`` (atomically). Returns the export
    report's ``int8`` section."""
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    batches = preprocessed_batches(cfg, "train", calibration_images)
    first = next(batches, None)
    if first is None:
        raise InvalidInputError(f"{cfg.filename}: the training dataset has no images to calibrate the int8 model on",
                                "point train_dataloader at the dataset the detector was trained on")
    calibration = _Counted(itertools.chain([first], batches))
    with tempfile.TemporaryDirectory(prefix="dmc-int8-") as work:
        quantized = quantize_int8(fp32_path, Path(work) / "int8.onnx", calibration, op_types=OP_TYPES)
        model = onnx.load(str(quantized))
        settings = quantization_settings(model)
        evaluation, first_feed = _evaluate_both(cfg, fp32_path, quantized, images)
        latency = compare_latency_ms(fp32_path, quantized, first_feed, threads, repeats)
        atomic_write(int8_path, lambda tmp: shutil.copyfile(quantized, tmp))
    return {
        "model": str(int8_path),
        "quantization": settings,
        "quantized": _quantized(model),
        "calibration": {"split": "train", "images": calibration.count, "batch": 1,
                        "choice": f"the first {calibration_images} in dataset order (all, where the split holds "
                                  f"fewer)",
                        "preprocessing": "the test pipeline and the data preprocessor, as the model's inputs"},
        **evaluation,
        "latency_ms": {**latency, "runtime": f"onnxruntime {ort.__version__} CPU", "cpu": cpu_model(),
                       "vnni": cpu_has_vnni()},
    }


class _Counted:
    """The feeds of an iterator, counted as they are read."""

    def __init__(self, feeds: Iterator[dict[str, np.ndarray]]):
        self.feeds, self.count = feeds, 0

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for feed in self.feeds:
            self.count += 1
            yield feed


def _evaluate_both(cfg: Config, fp32_path: Path, int8_path: Path,
                   images: int | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Both models on the test images (each preprocessed once): the COCO bbox mAP of each, as the export's check
    computes onnxruntime's (detections scaled back to the original images, the config's test evaluator), and how
    many of fp32's best detections int8 finds (:func:`detection_agreement`); and the first image's feed."""
    threads = torch.get_num_threads()
    sessions = {"fp32": ort_session(fp32_path, threads), "int8": ort_session(int8_path, threads)}
    dataset = build_dataset(cfg, "test")
    metric = coco_metric(cfg, dataset)
    results: dict[str, list[dict]] = {name: [] for name in sessions}
    detections = dict.fromkeys(sessions, 0)
    img_ids, found, looked_for, first_feed = [], 0, 0, None
    for data in preprocessed_samples(cfg, "test", images):
        feed = feeds(data)
        first_feed = feed if first_feed is None else first_feed
        outputs = {name: session.run(None, feed) for name, session in sessions.items()}
        for k, sample in enumerate(data["data_samples"]):
            got = {name: onnx_detections(dets[k], labels[k]) for name, (dets, labels) in outputs.items()}
            for name, (boxes, scores, labels) in got.items():
                detections[name] += len(scores)
                results[name].append(det_result(sample, rescaled_boxes(boxes, sample), torch.from_numpy(scores),
                                             torch.from_numpy(labels)))
            hits, top = detection_agreement(got["fp32"], got["int8"])
            found, looked_for = found + hits, looked_for + top
            img_ids.append(sample.img_id)
    if first_feed is None:
        raise InvalidInputError(f"{cfg.filename}: the test dataset has no images to measure the int8 model on",
                                "point test_dataloader at a dataset with images")
    ids = None if len(img_ids) == len(dataset) else img_ids
    metrics = {name: coco_map(metric, results[name], ids) for name in sessions}
    fp32, int8 = (metrics[name].get("coco/bbox_mAP") for name in ("fp32", "int8"))
    fp32_50, int8_50 = (metrics[name].get("coco/bbox_mAP_50") for name in ("fp32", "int8"))
    evaluation = {
        "map": {"split": "test", "images": len(img_ids), "fp32": fp32, "int8": int8,
                "drop": _drop(fp32, int8), "fp32_50": fp32_50, "int8_50": int8_50, "drop_50": _drop(fp32_50, int8_50),
                "decimals": MAP_DECIMALS,
                "fp32_metrics": metrics["fp32"], "int8_metrics": metrics["int8"]},
        "detections": {"fp32": detections["fp32"], "int8": detections["int8"],
                       f"fp32_top{TOP}_found": found, f"fp32_top{TOP}": looked_for,
                       "found_fraction": found / looked_for if looked_for else None,
                       "found_by": f"an int8 detection of the same label with IoU > {AGREEMENT_IOU}"},
    }
    return evaluation, {name: value[:1] for name, value in first_feed.items()}


def _drop(fp32: float | None, int8: float | None) -> float | None:
    """fp32 - int8, to the evaluator's decimals (COCO's metrics come rounded to 3)."""
    return None if fp32 is None or int8 is None else round(fp32 - int8, MAP_DECIMALS)


def detection_agreement(fp32: tuple[np.ndarray, np.ndarray, np.ndarray],
                        int8: tuple[np.ndarray, np.ndarray, np.ndarray], top: int = TOP,
                        iou: float = AGREEMENT_IOU) -> tuple[int, int]:
    """Of one image's ``top`` best fp32 detections (boxes, scores, labels), how many an int8 detection of the same
    label overlaps by more than ``iou``; and how many were looked for."""
    (f_boxes, f_scores, f_labels), (i_boxes, _, i_labels) = fp32, int8
    best = np.argsort(-f_scores, kind="stable")[:top]
    found = 0
    for j in best:
        same = i_labels == f_labels[j]
        found += bool(same.any() and (box_iou(f_boxes[j], i_boxes[same]) > iou).any())
    return found, len(best)


def _quantized(model: onnx.ModelProto) -> dict[str, Any]:
    """What was quantized: the op types asked for, how many of each of their nodes take dequantized (int8) inputs,
    and the op counts of the whole int8 model (QuantizeLinear/DequantizeLinear and the float ops)."""
    producers = {out: node.op_type for node in model.graph.node for out in node.output}
    initializers = {i.name for i in model.graph.initializer}
    nodes: dict[str, dict[str, int]] = {}
    for op in OP_TYPES:
        of_type = [n for n in model.graph.node if n.op_type == op]
        int8 = [n for n in of_type if all(producers.get(i) == "DequantizeLinear" for i in n.input[:2])]
        nodes[op] = {"quantized": len(int8), "of": len(of_type)}
    float_inputs = sorted({n.op_type for n in model.graph.node if n.op_type not in OP_TYPES
                           and n.op_type not in ("QuantizeLinear", "DequantizeLinear")
                           and any(producers.get(i) == "DequantizeLinear" and i not in initializers
                                   for i in n.input)})
    return {"op_types": list(OP_TYPES), "nodes": nodes,
            "float": "everything else: the post-processing (sigmoid, anchors, box decoding, TopK, gathers, "
                     "NonMaxSuppression) and the other ops run in float32",
            "float_ops_reading_dequantized_values": float_inputs,
            "ops": op_counts(model)}
