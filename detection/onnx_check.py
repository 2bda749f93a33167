"""The proof of an exported detector: onnxruntime against MMDetection's own ``predict`` on the config's test images.

Per image, both get the same preprocessed input (:func:`dmc.detection.onnx_inputs.preprocessed_samples`); the
detections of ``model.predict(..., rescale=False)`` and of the ONNX model must be as many, and each must have a
partner of the same label with a score within :data:`SCORE_TOLERANCE` and a box within :data:`BOX_TOLERANCE` pixels
(or an IoU of at least :data:`MIN_IOU`); partners are found in score order, so near-ties that the two runtimes order
differently still pair up. COCO bbox mAP is computed both ways with the config's test evaluator: from mmdet's
``predict(..., rescale=True)``, as ``dmc detect test`` does, and from onnxruntime's detections scaled back to the
original image by the pipeline's scale factor.
"""

from __future__ import annotations

import copy
import logging
import statistics
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

from dmc.detection.onnx_inputs import build_dataset, feeds, quiet

BOX_TOLERANCE = 1e-3
"""Largest coordinate difference in pixels of paired boxes (else their IoU must be at least :data:`MIN_IOU`)."""
MIN_IOU = 0.999
SCORE_TOLERANCE = 1e-4
"""Largest score difference of paired detections."""
MAP_DECIMALS = 3
"""The two mAPs must be equal when rounded to this many decimals."""


def onnx_detections(dets: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's real detections (score > 0) from the padded outputs: boxes [n, 4], scores [n], labels [n]."""
    found = dets[:, 4] > 0
    return dets[found, :4], dets[found, 4], labels[found]


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x1, y1, x2, y2) box with each of ``boxes``."""
    lt, rb = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    union = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), (np.abs(boxes - box).max(axis=1) == 0) * 1.0)


def compare_image(expected: tuple[np.ndarray, np.ndarray, np.ndarray],
                  got: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Pairs the detections of one image (boxes, scores, labels each), in descending score order, each expected one
    with the unpaired one of the same label and a score within tolerance that overlaps it most."""
    (e_boxes, e_scores, e_labels), (g_boxes, g_scores, g_labels) = expected, got
    free = np.ones(len(g_scores), dtype=bool)
    box_diff, score_diff, min_iou, unpaired = 0.0, 0.0, 1.0, 0
    for i in np.argsort(-e_scores, kind="stable"):
        near = free & (g_labels == e_labels[i]) & (np.abs(g_scores - e_scores[i]) <= SCORE_TOLERANCE)
        if not near.any():
            unpaired += 1
            continue
        candidates = np.nonzero(near)[0]
        ious = box_iou(e_boxes[i], g_boxes[candidates])
        j = candidates[int(np.argmax(ious))]
        diff = float(np.abs(g_boxes[j] - e_boxes[i]).max())
        if diff > BOX_TOLERANCE and ious.max() < MIN_IOU:
            unpaired += 1
            continue
        free[j] = False
        box_diff, score_diff = max(box_diff, diff), max(score_diff, float(abs(g_scores[j] - e_scores[i])))
        min_iou = min(min_iou, float(ious.max()))
    return {"expected": int(len(e_scores)), "got": int(len(g_scores)), "unpaired": unpaired,
            "max_box_abs_diff": box_diff, "max_score_abs_diff": score_diff, "min_iou": min_iou}


def _prediction(sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = sample.pred_instances
    return pred.bboxes.numpy(), pred.scores.numpy(), pred.labels.numpy()


def coco_metric(cfg: Config, dataset):
    """The config's test evaluator (COCO bbox) set up for ``dataset``, or None where the config has none."""
    from mmdet.registry import METRICS

    evaluator = cfg.get("test_evaluator")
    if not isinstance(evaluator, dict) or evaluator.get("type", "").split(".")[-1] != "CocoMetric":
        return None
    with quiet():
        metric = METRICS.build(copy.deepcopy(evaluator))
    metric.dataset_meta = dataset.metainfo
    return metric


def coco_map(metric, results: list[dict], img_ids: list[int] | None) -> dict[str, float]:
    """The metric on ``results`` (pycocotools' prints and mmengine's log lines kept off the console)."""
    if metric is None:
        return {}
    metric.results = []
    metric.img_ids = img_ids
    metric.process({}, results)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with quiet():
            return {k: float(v) for k, v in metric.evaluate(len(results)).items()}
    finally:
        logger.setLevel(level)


def det_result(sample, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> dict:
    """One image's detections (in the original image's pixels) as mmdet's metrics take them."""
    return {"img_id": sample.img_id, "ori_shape": sample.ori_shape,
            "pred_instances": {"bboxes": boxes, "scores": scores, "labels": labels}}


def rescaled_boxes(boxes: np.ndarray, sample) -> torch.Tensor:
    """Boxes in the input's pixels back in the original image's, as mmdet's ``scale_boxes`` does."""
    scale_w, scale_h = sample.metainfo.get("scale_factor", (1.0, 1.0))
    return torch.from_numpy(boxes) * torch.tensor([1 / scale_w, 1 / scale_h]).repeat(2)


def check_detector(session, model: torch.nn.Module, cfg: Config, samples: Iterable[dict]) -> dict[str, Any]:
    """Parity per image and mAP both ways over ``samples`` (from :func:`preprocessed_samples` of the test split,
    consumed one at a time)."""
    dataset = build_dataset(cfg, "test")
    metric = coco_metric(cfg, dataset)
    per_image, torch_results, onnx_results = [], [], []
    for data in samples:
        x, data_samples = data["inputs"], data["data_samples"]
        dets, labels = session.run(None, feeds(data))
        with torch.no_grad():
            expected = model.predict(x, copy.deepcopy(data_samples), rescale=False)
            rescaled = model.predict(x, copy.deepcopy(data_samples), rescale=True)
        for k, sample in enumerate(data_samples):
            got = onnx_detections(dets[k], labels[k])
            per_image.append({"img_id": sample.img_id, **compare_image(_prediction(expected[k]), got)})
            pred = rescaled[k].pred_instances
            torch_results.append(det_result(sample, pred.bboxes, pred.scores, pred.labels))
            onnx_results.append(det_result(sample, rescaled_boxes(got[0], sample), torch.from_numpy(got[1]),
                                        torch.from_numpy(got[2])))
    ids = None if len(per_image) == len(dataset) else [p["img_id"] for p in per_image]
    torch_map, onnx_map = coco_map(metric, torch_results, ids), coco_map(metric, onnx_results, ids)
    parity = {
        "images": len(per_image),
        "detections": sum(p["expected"] for p in per_image),
        "count_mismatches": sum(p["expected"] != p["got"] for p in per_image),
        "unpaired": sum(p["unpaired"] for p in per_image),
        "max_box_abs_diff": max((p["max_box_abs_diff"] for p in per_image), default=0.0),
        "max_score_abs_diff": max((p["max_score_abs_diff"] for p in per_image), default=0.0),
        "min_iou": min((p["min_iou"] for p in per_image), default=1.0),
        "tolerances": {"box_px": BOX_TOLERANCE, "min_iou": MIN_IOU, "score": SCORE_TOLERANCE},
        "per_image": per_image,
    }
    parity["passed"] = parity["count_mismatches"] == 0 and parity["unpaired"] == 0
    key = "coco/bbox_mAP"
    maps = {"mmdet": torch_map.get(key), "onnxruntime": onnx_map.get(key), "decimals": MAP_DECIMALS,
            "mmdet_metrics": torch_map, "onnxruntime_metrics": onnx_map}
    maps["passed"] = (maps["mmdet"] is None and maps["onnxruntime"] is None) or (
        maps["mmdet"] is not None and maps["onnxruntime"] is not None
        and round(maps["mmdet"], MAP_DECIMALS) == round(maps["onnxruntime"], MAP_DECIMALS))
    return {"parity": parity, "map": maps}


def check_batch(session, sample: dict, copies: int = 2) -> dict[str, Any]:
    """One image as a batch of ``copies``: every row must give the detections of the image alone (paired as
    :func:`compare_image` pairs them)."""
    one = {name: value[:1] for name, value in feeds(sample).items()}
    dets, labels = session.run(None, one)
    alone = onnx_detections(dets[0], labels[0])
    dets, labels = session.run(None, {name: np.repeat(value, copies, axis=0) for name, value in one.items()})
    rows = [compare_image(alone, onnx_detections(dets[k], labels[k])) for k in range(copies)]
    return {"batch": copies, "max_box_abs_diff": max(r["max_box_abs_diff"] for r in rows),
            "max_score_abs_diff": max(r["max_score_abs_diff"] for r in rows),
            "passed": all(r["expected"] == r["got"] and r["unpaired"] == 0 for r in rows)}


def latency(model_path, model: torch.nn.Module, sample: dict, repeats: int = 10, threads: int = 1) -> dict[str, Any]:
    """Batch-1 wall times of onnxruntime and of mmdet's ``predict`` (PyTorch eager, ``rescale=False``) on ``threads``
    threads each, interleaved (:func:`dmc.exporters.latency.interleaved_times_ms`) in this process. One thread by
    default: on a busy machine PyTorch's OpenMP threads waiting for each other made its times swing 40-fold."""
    from dmc.exporters.latency import interleaved_times_ms, ort_session

    session = ort_session(model_path, threads)
    x, data_samples = sample["inputs"][:1], sample["data_samples"][:1]
    feed = feeds({"inputs": x, "data_samples": data_samples})
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            ort_ms, torch_ms = interleaved_times_ms([lambda: session.run(None, feed),
                                                     lambda: model.predict(x, data_samples, rescale=False)], repeats)
    finally:
        torch.set_num_threads(before)
    return {"input_shape": list(x.shape), "repeats": repeats, "threads": threads,
            "onnxruntime_ms": statistics.median(ort_ms), "pytorch_ms": statistics.median(torch_ms),
            "onnxruntime_ms_range": [min(ort_ms), max(ort_ms)], "pytorch_ms_range": [min(torch_ms), max(torch_ms)]}
