"""ONNX export that proves itself: export with the dynamo exporter, check the model, compare with onnxruntime.

    report = export_onnx(network, "model.onnx", input_size=32)
    report["parity"]["max_abs_error"]   # over random inputs, batch sizes 1 and 7 included

The report is also written beside the model (``model.onnx.json``). The model's metadata carries the
genotype, dmc's version, the input size and the normalisation, so a deployment needs nothing else.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from dmc.compiler.networks import CompiledNetwork
from dmc.errors import DmcError, InvalidInputError, NamedSettingsError, SettingError
from dmc.io import atomic_write, atomic_write_text
from dmc.profile import median_ms
from dmc.version import __version__

TOLERANCE = 1e-4
"""Largest absolute difference between onnxruntime and PyTorch accepted for fp32 models."""


def supported_opsets() -> range:
    """The opsets the dynamo exporter writes: from torchlib's own opset (lower ones are converted, which can
    fail and silently keep the higher one) up to the newest the exporter declares."""
    try:
        from torch.onnx import _constants
        from torch.onnx._internal.exporter._constants import TORCHLIB_OPSET

        return range(TORCHLIB_OPSET, _constants.ONNX_MAX_OPSET + 1)
    except (ImportError, AttributeError):  # private names moved: the floor and ceiling of this torch
        return range(18, 24)


class ParityError(DmcError):
    """onnxruntime's outputs differ from PyTorch's by more than the tolerance."""


class _Features(nn.Module):
    """Wraps a network so that it returns its stage feature maps instead of logits."""

    def __init__(self, network: CompiledNetwork, out_indices: list[int]):
        super().__init__()
        self.network, self.out_indices = network, out_indices

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.network.forward_intermediates(x, self.out_indices, intermediates_only=True))


def _output_names(network: CompiledNetwork, features: list[int] | None) -> list[str]:
    if features is None:
        return ["logits"]
    return [f"features_{i}_stride{network.feature_info.reduction(i)}" for i in features]


def report_path(path: str | Path) -> Path:
    """Where the parity report of the model at ``path`` is written: ``model.onnx`` -> ``model.onnx.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def default_opset(model: onnx.ModelProto) -> int:
    """The model's opset of the default (ai.onnx) domain."""
    return next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx"))


def check_opset(opset: int | None) -> None:
    """Refuses an opset the exporter does not write (None: the exporter's default)."""
    opsets = supported_opsets()
    if opset is not None and opset not in opsets:
        raise InvalidInputError(f"opset {opset} is not supported by the exporter",
                                f"choose an opset from {opsets.start} to {opsets.stop - 1}, or leave it at the default")


def exported_model(raw: Path, opset: int | None, metadata: dict[str, str]) -> onnx.ModelProto:
    """The model the exporter wrote to ``raw``, refused unless it has the requested ``opset`` (the exporter can
    silently keep a higher one), with ``metadata`` added to its ``metadata_props``."""
    model = onnx.load(str(raw))
    if opset is not None and default_opset(model) != opset:
        raise NamedSettingsError(f"the exporter wrote opset {default_opset(model)} instead of the requested "
                                 f"{opset}", "leave {opset} at the default, or choose another opset")
    for key, value in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    return model


def _check_arguments(opset: int | None, runs: int) -> None:
    check_opset(opset)
    if runs < 1:
        raise SettingError(f"runs={runs}: the parity check needs at least 1 random input per batch size",
                           "pass {runs} 1 or more, or {check=False} to skip the check")


def _metadata(network: CompiledNetwork, input_size: int, mean, std, outputs: list[str]) -> dict[str, str]:
    return {
        "dmc.version": __version__,
        "dmc.genotype": json.dumps(network.genotype.to_dict()),
        "dmc.build_args": json.dumps(network.build_args.to_dict()),
        "dmc.input_size": str(input_size),
        "dmc.normalization": json.dumps({"mean": list(mean), "std": list(std)}),
        "dmc.outputs": json.dumps(outputs),
    }


def _session(path: Path) -> ort.InferenceSession:
    """An onnxruntime CPU session whose worker threads sleep between runs instead of spinning: spinning threads keep
    the cores busy after each run and starve PyTorch's OpenMP threads when the two engines alternate, as the parity
    check and the latency comparison do (PyTorch ran up to 100x slower on 2 cores)."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _compare(session: ort.InferenceSession, module: nn.Module, shape: tuple[int, ...], runs: int,
             batches: list[int], seed: int) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(seed)
    input_name = session.get_inputs()[0].name
    max_abs, max_rel, cases = 0.0, 0.0, []
    for batch in batches:
        for _ in range(runs):
            x = torch.randn((batch, *shape[1:]), generator=generator)
            with torch.no_grad():
                expected = module(x)
            expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
            got = session.run(None, {input_name: x.numpy()})
            for e, g in zip(expected, got):
                e = e.numpy()
                diff = np.abs(e - g)
                max_abs = max(max_abs, float(diff.max()))
                max_rel = max(max_rel, float((diff / (np.abs(e) + 1e-6)).max()))
        cases.append(batch)
    return {"runs_per_batch": runs, "batches": cases, "max_abs_error": max_abs, "max_rel_error": max_rel}


def _latency(session, module: nn.Module, shape: tuple[int, ...], repeats: int = 10) -> dict[str, float]:
    """Median latency of onnxruntime and of PyTorch eager on one input, same process and threads."""
    x = torch.randn(shape)
    feeds = {"input": x.numpy()}

    with torch.no_grad():
        return {"onnxruntime": median_ms(lambda: session.run(None, feeds), repeats, warmup=1),
                "pytorch": median_ms(lambda: module(x), repeats, warmup=1)}


def export_onnx(network: CompiledNetwork, path: str | Path, *, input_size: int | None = None,
                dynamic_batch: bool = True, opset: int | None = None, features: list[int] | None = None,
                mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), allow_random: bool = False, check: bool = True,
                runs: int = 3, seed: int = 0, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Exports ``network`` (eval mode) to ONNX at ``path`` and, unless ``check`` is off, proves it.

    ``features``: export these stage outputs (see ``network.feature_info``; negative indices count from the end)
    as named outputs, in stage order, instead of logits. Raises :class:`ParityError` (after writing the model and
    its report) when onnxruntime differs from PyTorch by more than ``tolerance``; refuses networks with random ops
    unless ``allow_random``. ``opset`` must be one of :func:`supported_opsets`, and the model is written only
    when the exporter honoured it.
    """
    path = Path(path)
    _check_arguments(opset, runs)
    if not network.deterministic and not allow_random:
        raise SettingError("the genotype keeps 'noise' ops, so the exported model's outputs would be random",
                           "pass {allow_random} to export it anyway (the parity check is skipped)")
    size = input_size or network.build_args.input_size
    network.check_input_size(size, size)
    if features is not None:
        features = network.feature_info.take_indices(features, "features")
    network = network.eval()
    module: nn.Module = (_Features(network, features) if features is not None else network).eval()
    outputs = _output_names(network, features)
    shape = (2, network.build_args.in_channels, size, size)
    example = torch.randn(shape)
    dynamic_shapes = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None

    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as work:
            raw = Path(work) / "model.onnx"
            torch.onnx.export(module, (example,), str(raw), dynamo=True, input_names=["input"],
                              output_names=outputs, dynamic_shapes=dynamic_shapes, opset_version=opset,
                              verbose=False)
            model = exported_model(raw, opset, _metadata(network, size, mean, std, outputs))
        onnx.save(model, str(tmp))

    atomic_write(path, write)
    model = onnx.load(str(path))
    report: dict[str, Any] = {
        "model": str(path), "dmc_version": __version__, "opset": default_opset(model),
        "input": {"name": "input", "shape": ["batch" if dynamic_batch else shape[0], *shape[1:]]},
        "outputs": outputs, "parity": None, "tolerance": tolerance, "passed": None,
    }
    if check:
        onnx.checker.check_model(model, full_check=True)
        report["onnx_checker"] = "passed (full check)"
        if network.deterministic:
            session = _session(path)
            batches = [shape[0], 1, 7] if dynamic_batch else [shape[0]]
            report["parity"] = _compare(session, module, shape, runs, batches, seed)
            report["passed"] = report["parity"]["max_abs_error"] <= tolerance
            if dynamic_batch:
                report["latency_ms_batch1"] = _latency(session, module, (1, *shape[1:]))
    atomic_write_text(report_path(path), json.dumps(report, indent=2) + "\n")
    if report["passed"] is False:
        raise ParityError(f"onnxruntime differs from PyTorch by up to {report['parity']['max_abs_error']:.2e} "
                          f"(tolerance {tolerance:.0e}); the model and its report are in {path.parent}",
                          "report it with the .json report attached")
    return report
