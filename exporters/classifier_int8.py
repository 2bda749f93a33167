"""``dmc export --int8 --calibration DATA``: a classifier's fp32 ONNX model and its int8 model, measured against it.

    report = export_onnx_int8(network, "model.onnx", "digits")   # fp32 + int8 + one report

:func:`export_onnx_int8` reads calibration images from a dataset's training split and test images from its test
split, preprocessed as the exported model's input (its image size and recorded normalisation), refuses data the
network was not made for before writing anything, exports the fp32 model as :func:`dmc.exporters.onnx.export_onnx`
does, quantizes it (:func:`dmc.exporters.int8.quantize_int8`), and adds an ``int8`` section to the export's report:
the calibration set, both models' top-1 accuracy on the test images (onnxruntime), and both latencies at batch 1 on
one thread with the speed-up, measured in the same process.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from dmc.api import CompiledNetwork, load_dataset
from dmc.data import DATASETS, image_side
from dmc.errors import InvalidInputError, SettingError
from dmc.exporters.int8 import (
    compare_latency_ms,
    op_counts,
    quantization_settings,
    quantize_int8,
    write_report_naming_int8,
)
from dmc.exporters.latency import cpu_has_vnni, cpu_model, ort_session
from dmc.exporters.onnx import export_onnx, report_path
from dmc.io import atomic_write
from dmc.train.config import default_recipe

CALIBRATION_IMAGES = 300
"""Training images the activation ranges are calibrated on by default."""
TEST_IMAGES = 500
"""At most this many test images (a seeded random choice where the split holds more) are classified by both models."""
BATCH = 32
"""Images per onnxruntime run in calibration and evaluation (models exported with a static batch run theirs)."""
MAX_IMAGES = 100_000


def default_int8_path(path: str | Path) -> Path:
    """Where ``dmc export --int8`` writes the int8 model by default: ``model.onnx`` -> ``model.int8.onnx``."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return path.with_name(path.stem + ".int8.onnx")
    return path.with_name(path.name + ".int8.onnx")


def export_onnx_int8(network: CompiledNetwork, path: str | Path, calibration: str, *,
                     int8_out: str | Path | None = None, calibration_images: int = CALIBRATION_IMAGES,
                     test_images: int = TEST_IMAGES, threads: int = 1, repeats: int = 20, seed: int = 0,
                     **export_options: Any) -> dict[str, Any]:
    """Exports the classifier ``network`` to ONNX at ``path`` (:func:`dmc.exporters.onnx.export_onnx`, with
    ``export_options``) and an int8 model of it at ``int8_out`` (default :func:`default_int8_path`), and returns the
    export's report with an ``int8`` section (also written to the report file).

    ``calibration`` is a dataset as ``dmc train`` takes it (``digits``, ``cifar10:PATH``, ``cifar100:PATH``,
    ``folder:PATH``): ``calibration_images`` of its training images (a seeded random choice) calibrate the
    activation ranges and at most ``test_images`` of its test images measure both models' top-1 accuracy, all
    preprocessed as the exported model's input: its image size, and the normalisation it records (``mean``/``std``
    of ``export_options``; folders of 64 px and more get the imagenet recipe's resize and center crop). Data whose
    images or classes do not fit the network is refused before anything is written. Latency: both models at batch
    1, ``threads`` threads, ``repeats`` interleaved runs (:func:`compare_latency_ms`).

    Nothing is half-written: an int8 file left from an earlier export to ``int8_out`` is removed first; the int8
    model is written only once it was quantized, checked and measured, and removed again if the report cannot be
    written. When a step after the fp32 export fails, the fp32 model and its report (without ``int8``) stand.
    """
    path = Path(path)
    int8_path = Path(int8_out) if int8_out is not None else default_int8_path(path)
    _check_request(network, path, int8_path, calibration_images, test_images, export_options)
    size = export_options.get("input_size") or network.build_args.input_size
    network.check_input_size(size, size)
    mean = tuple(export_options.get("mean", (0.0, 0.0, 0.0)))
    std = tuple(export_options.get("std", (1.0, 1.0, 1.0)))
    data = _ClassifierData(network, calibration, size, mean, std, calibration_images, test_images, seed)
    int8_path.unlink(missing_ok=True)  # a model of an earlier export: never beside a report that does not name it
    report = export_onnx(network, path, **export_options)
    fixed_batch = report["input"]["shape"][0] if isinstance(report["input"]["shape"][0], int) else None
    batch = fixed_batch or BATCH
    with tempfile.TemporaryDirectory(prefix="dmc-int8-") as work:
        quantized = quantize_int8(path, Path(work) / "int8.onnx", _batches(data.calibration[0], batch))
        fp32_top1, fp32_predicted = _top1(ort_session(path, 0), data.test, batch)
        int8_top1, int8_predicted = _top1(ort_session(quantized, 0), data.test, batch)
        latency = compare_latency_ms(path, quantized, {"input": data.test[0][:fixed_batch or 1]}, threads, repeats)
        model = onnx.load(str(quantized))
        settings, ops = quantization_settings(model), op_counts(model)
        atomic_write(int8_path, lambda tmp: shutil.copyfile(quantized, tmp))
    report["int8"] = {
        "model": str(int8_path),
        "quantization": settings,
        "quantized_ops": ops,
        "calibration": {"dataset": calibration, "split": "train", "images": len(data.calibration[0]),
                        "choice": f"random, seed {seed} (all, where the split holds fewer)", "batch": batch,
                        **data.preprocessing},
        "accuracy": {"dataset": calibration, "split": "test", "images": len(data.test[0]), "fp32_top1": fp32_top1,
                     "int8_top1": int8_top1, "drop": fp32_top1 - int8_top1,
                     "agreement": float(np.mean(fp32_predicted == int8_predicted))},
        "latency_ms": {**latency, "runtime": f"onnxruntime {ort.__version__} CPU", "cpu": cpu_model(),
                       "vnni": cpu_has_vnni()},
    }
    write_report_naming_int8(report, report_path(path), int8_path)
    return report


class _ClassifierData:
    """The calibration images (training split) and test images with labels of a dataset, as float32 NCHW arrays
    preprocessed as the exported model's input; refuses data that does not fit ``network``."""

    def __init__(self, network: CompiledNetwork, spec: str, size: int, mean: tuple[float, ...],
                 std: tuple[float, ...], calibration_images: int, test_images: int, seed: int):
        args = network.build_args
        _check_spec(spec)
        if image_side(spec, size) != size:
            raise InvalidInputError(f"calibration data {spec}: {image_side(spec, size)}x{image_side(spec, size)} "
                                    f"images, but the exported model takes {size}x{size}",
                                    f"export at --input-size {image_side(spec, size)}, or calibrate on data of "
                                    f"{size}-pixel images (digits and folder datasets are resized)")
        policy = "imagenet" if default_recipe(spec, size) == "imagenet" else "cifar"
        bundle = load_dataset(spec, image_size=size, policy=policy)
        if bundle.num_classes != args.num_classes:
            raise InvalidInputError(f"calibration data {spec} has {bundle.num_classes} classes, but the network "
                                    f"classifies {args.num_classes}",
                                    "calibrate on the data the network was trained on")
        generator = np.random.default_rng(seed)
        self.calibration = _images(bundle.train, calibration_images, generator, bundle.mean, bundle.std, mean, std)
        self.test = _images(bundle.test, test_images, generator, bundle.mean, bundle.std, mean, std)
        shape = tuple(self.calibration[0].shape[1:])
        if shape != (args.in_channels, size, size):
            raise InvalidInputError(f"calibration data {spec}: images of shape {'x'.join(map(str, shape))}, but "
                                    f"the exported model takes {args.in_channels}x{size}x{size}",
                                    "calibrate on the data the network was trained on")
        self.preprocessing = {"image_size": size, "policy": policy, "mean": list(mean), "std": list(std)}


def _check_request(network: CompiledNetwork, path: Path, int8_path: Path, calibration_images: int,
                   test_images: int, export_options: dict[str, Any]) -> None:
    if export_options.get("features") is not None:
        raise SettingError("int8 export quantizes classifiers: {features} exports feature maps",
                           "drop {features}, or export the feature maps without int8")
    if not network.deterministic:
        raise SettingError("the genotype keeps 'noise' ops: an int8 model of it could not be measured against "
                           "its fp32 model", "export it without int8")
    for name, value in (("calibration_images", calibration_images), ("test_images", test_images)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IMAGES:
            raise SettingError(f"{{{name}}} must be an integer from 1 to {MAX_IMAGES}, got {value!r}")
    if int8_path.is_dir():
        raise InvalidInputError(f"{int8_path}: is a folder, not a file", "give the int8 model a file name")
    for other in (path, report_path(path)):
        if int8_path.resolve() == other.resolve():
            raise InvalidInputError(f"the int8 model {int8_path} would overwrite {other}, written by the same export",
                                    "write the int8 model to another path")


def _check_spec(spec: str) -> None:
    """Refuses CIFAR and folder datasets without their path in the calibration option's own words."""
    name, _, location = spec.partition(":")
    if name in ("cifar10", "cifar100", "folder") and not location:
        raise SettingError(f"calibration data {name} needs the folder holding it (no downloads)",
                           f"pass {{calibration}} {name}:PATH")
    if name not in {d.partition(":")[0] for d in DATASETS}:
        raise InvalidInputError(f"unknown calibration data {spec!r}", f"choose one of: {', '.join(DATASETS)}")


def _images(dataset: Any, count: int, generator: np.random.Generator, data_mean: tuple[float, ...],
            data_std: tuple[float, ...], mean: tuple[float, ...],
            std: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images of ``dataset`` (all when it holds fewer; else a random choice, kept in dataset order) and
    their labels, renormalised from the dataset's normalisation to the model's."""
    total = len(dataset)
    chosen = range(total) if total <= count else sorted(generator.choice(total, count, replace=False).tolist())
    images, labels = [], []
    for i in chosen:
        image, label = dataset[int(i)]
        images.append(image)
        labels.append(int(label))
    x = torch.stack(images).float()
    if (tuple(data_mean), tuple(data_std)) != (mean, std):
        d_mean, d_std = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in (data_mean, data_std))
        n_mean, n_std = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in (mean, std))
        x = (x * d_std + d_mean - n_mean) / n_std
    return np.ascontiguousarray(x.numpy(), dtype=np.float32), np.asarray(labels, dtype=np.int64)


def _batches(images: np.ndarray, batch: int) -> Iterator[dict[str, np.ndarray]]:
    """Feeds of ``batch`` images; the last one is filled up with the first images (a static batch needs it whole;
    repeated images change no activation range)."""
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        if len(chunk) < batch:
            chunk = np.concatenate([chunk, np.resize(images, (batch - len(chunk), *images.shape[1:]))])
        yield {"input": chunk}


def _top1(session: ort.InferenceSession, data: tuple[np.ndarray, np.ndarray], batch: int) -> tuple[float, np.ndarray]:
    images, labels = data
    predicted = np.concatenate([session.run(None, feed)[0].argmax(axis=1) for feed in _batches(images, batch)])
    predicted = predicted[:len(labels)]
    return float(np.mean(predicted == labels)), predicted
