"""int8 ONNX models by static post-training quantization in onnxruntime, and their latency against the fp32 model.

    path = quantize_int8("model.onnx", "model.int8.onnx", calibration)   # feeds {input name: float32 NCHW batch}
    compare_latency_ms("model.onnx", "model.int8.onnx", {"input": x})     # interleaved, 1 thread: medians, speed-up

Model-agnostic: any network whose calibration feeds you can build. Classifiers: :mod:`dmc.exporters.classifier_int8`
(``dmc export --int8``); detectors: :mod:`dmc.detection.onnx_export` (``dmc detect export --int8``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader

from dmc.errors import DmcError, InvalidInputError, SettingError
from dmc.exporters.latency import interleaved_times_ms, ort_session
from dmc.io import atomic_write, atomic_write_text
from dmc.latency import Timing

SETTINGS: dict[str, Any] = {
    "format": "QDQ",
    "weights": "int8 (QInt8), symmetric, per output channel",
    "activations": "uint8 (QUInt8), asymmetric, per tensor",
    "calibration_method": "MinMax",
    "reduce_range": False,
}
"""The quantization :func:`quantize_int8` applies, as the report records it.

Activations uint8 and weights int8 (U8S8) is the combination onnxruntime's quantization guide recommends for x86-64
CPUs: its int8 convolution and matmul kernels (MLAS, with VNNI's u8 x s8 dot products where the CPU has them) take
an unsigned activation and a signed weight. Symmetric int8 weights per output channel keep each filter's own range
(one scale for a whole layer would crush the small filters a depthwise or 1x1 layer mixes with large ones); bias is
int32. On AVX2/AVX-512 CPUs without VNNI the u8 x s8 products can saturate their 16-bit intermediates, for which the
guide offers ``reduce_range`` (7-bit weights); the report names the CPU and whether it has VNNI, and
``reduce_range`` stays off. MinMax calibration (the observed range of each activation over the calibration
images) was measured against Percentile and Entropy (DARTS_V2, 16 channels, 8 cells, trained 5 epochs on digits, 300
calibration images, the 360 test images): all three within one test image of the fp32 accuracy (MinMax and Entropy
agree with fp32 on every image, Percentile on all but two), and MinMax quantized in 5 s where they took 19-26 s.
``quant_pre_process`` matters: without it the batch norms stay unfolded, and the int8 model ran 0.84x as fast as the
fp32 one instead of 1.03x."""


class _Feeds(CalibrationDataReader):
    """onnxruntime's calibration reader over an iterable of feeds."""

    def __init__(self, feeds: Iterator[dict[str, np.ndarray]]):
        self.feeds = feeds

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed = next(self.feeds, None)
        if feed is None:
            return None
        # images as float32; other inputs (a detector's int64 image sizes) as they are
        return {name: np.ascontiguousarray(value, dtype=np.float32 if np.issubdtype(value.dtype, np.floating)
                                           else value.dtype) for name, value in feed.items()}


def _pre_process(source: Path, target: Path) -> str:
    """Symbolic shape inference, onnxruntime's graph optimisation (batch norms folded into their convolutions, so
    that they quantize with them) and ONNX shape inference, as onnxruntime recommends before quantizing; where the
    symbolic shape inference cannot follow the graph (a detector's data-dependent NMS output), the rest without it.
    Returns what was done, for the report (when nothing could be, the model is quantized as exported)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # the symbolic shape inference leaves a debug model in the working folder when it gives up: keep it in ours
    with contextlib.chdir(target.parent):
        try:
            quant_pre_process(str(source), str(target))
            return "quant_pre_process"
        except Exception:  # noqa: BLE001  (tried again without it below)
            pass
        try:
            quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
        except Exception as exc:  # the pre-processing is an optimisation: without it the model still quantizes
            target.unlink(missing_ok=True)
            return f"none: quant_pre_process failed ({type(exc).__name__}: {_first_line(exc)})"
    return "quant_pre_process without the symbolic shape inference, which could not follow the graph"


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calibration: Iterable[dict[str, np.ndarray]], *,
                  op_types: Sequence[str] | None = None) -> Path:
    """Quantizes the ONNX model at ``fp32_path`` to int8 at ``out_path`` (written atomically) with onnxruntime's
    static quantization, QDQ format, as :data:`SETTINGS` says, calibrating activation ranges on ``calibration``:
    feeds ``{input name: float32 NCHW batch}``, preprocessed as the model's inputs are. The model's metadata is kept
    and ``dmc.quantization`` (the settings, as JSON) added. ``op_types``: quantize only nodes of these op types
    (onnxruntime's ``op_types_to_quantize``; its ranges are calibrated for them only), recorded in the settings as
    ``op_types``; the default (None) quantizes every op onnxruntime can. The int8 model passes ``onnx.checker``'s
    full check before it is written. Raises :class:`InvalidInputError` when ``calibration`` yields nothing,
    :class:`DmcError` when onnxruntime cannot quantize the model."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if op_types is not None and (isinstance(op_types, str) or not op_types):
        raise SettingError(f"{{op_types}} must name at least one op type (a list), got {op_types!r}",
                           "leave {op_types} out to quantize every op onnxruntime can")
    feeds = iter(calibration)
    first = next(feeds, None)
    if first is None:
        raise InvalidInputError("no calibration data: the calibration feeds are empty",
                                "pass at least one batch of calibration images")
    with tempfile.TemporaryDirectory(prefix="dmc-int8-") as work:
        prepared = Path(work) / "prepared.onnx"
        pre_process = _pre_process(fp32_path, prepared)
        source = prepared if prepared.exists() else fp32_path
        quantized = Path(work) / "int8.onnx"
        try:
            with _warnings_kept() as warnings:
                quantize_static(str(source), str(quantized), _Feeds(itertools.chain([first], feeds)),
                                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax,
                                op_types_to_quantize=list(op_types) if op_types is not None else None)
        except DmcError:
            raise
        except Exception as exc:
            raise DmcError(f"onnxruntime {ort.__version__} could not quantize {fp32_path}: {type(exc).__name__}: "
                           f"{_first_line(exc)}", "report it with the fp32 model attached") from None
        model = onnx.load(str(quantized))
        onnx.checker.check_model(model, full_check=True)
        chosen = {"op_types": list(op_types)} if op_types is not None else {}
        settings = {**SETTINGS, **chosen, "pre_process": pre_process,
                    "onnxruntime": ort.__version__, "quantizer_warnings": warnings}
        _set_metadata(model, "dmc.quantization", json.dumps(settings))
        atomic_write(out_path, lambda tmp: onnx.save(model, str(tmp)))
    return out_path


def quantization_settings(model: onnx.ModelProto) -> dict[str, Any]:
    """The settings :func:`quantize_int8` recorded in an int8 model's metadata (``dmc.quantization``)."""
    return json.loads({p.key: p.value for p in model.metadata_props}["dmc.quantization"])


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """How many nodes of each op type a model has (an int8 model: QuantizeLinear, DequantizeLinear and the ops
    between them), by op type."""
    return dict(sorted(Counter(node.op_type for node in model.graph.node).items()))


def compare_latency_ms(fp32_path: str | Path, int8_path: str | Path, feed: dict[str, np.ndarray], threads: int = 1,
                       repeats: int = 20) -> dict[str, Any]:
    """Latency of both models on ``feed`` in onnxruntime (:func:`dmc.exporters.latency.ort_session` with ``threads``
    intra-op threads), timed round-robin after a warm-up (:func:`dmc.exporters.latency.interleaved_times_ms`), so
    that the machine's noise falls on both alike: each one's median and range (quartiles, fastest and slowest run,
    milliseconds), and ``speedup``, the fp32 median over the int8 median."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise SettingError(f"{{threads}} must be 1 or more, got {threads!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise SettingError(f"{{repeats}} must be 1 or more, got {repeats!r}")
    sessions = [ort_session(fp32_path, threads), ort_session(int8_path, threads)]
    runs = [lambda s=session: s.run(None, feed) for session in sessions]
    fp32, int8 = (Timing.from_times(times) for times in interleaved_times_ms(runs, repeats))
    return {"batch": int(next(iter(feed.values())).shape[0]), "threads": threads, "repeats": repeats,
            "fp32": fp32.to_dict(), "int8": int8.to_dict(), "speedup": fp32.median_ms / int8.median_ms}


def _set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    for entry in model.metadata_props:
        if entry.key == key:
            entry.value = value
            return
    model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))


@contextmanager
def _warnings_kept() -> Iterator[list[str]]:
    """Yields the list the quantizer's log messages of level WARNING and above go to while inside, instead of stderr:
    onnxruntime's quantizer logs on the root logger (e.g. a batch norm's scale quantized per tensor where its
    per-channel axis does not apply), which would print through logging's last-resort handler."""
    kept: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message not in kept:
                kept.append(message)

    root, handler = logging.getLogger(), Keep(logging.WARNING)
    root.addHandler(handler)
    try:
        yield kept
    finally:
        root.removeHandler(handler)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def write_report_naming_int8(report: dict[str, Any], report_file: Path, int8_path: Path) -> None:
    """Writes an export's report (atomically) once its int8 model at ``int8_path`` is in place, and removes that
    model if the report cannot be written: an int8 model never lies beside a report that does not name it."""
    try:
        atomic_write_text(report_file, json.dumps(report, indent=2) + "\n")
    except BaseException:
        int8_path.unlink(missing_ok=True)
        raise
