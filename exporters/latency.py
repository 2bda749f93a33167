"""Measuring the latency look-up table of a chain search space (:class:`dmc.latency.LatencyTable`).

    table = measure_latency_table("proxyless_s5", width=1.0, image_size=224, out_path="lut.json")
    table.network_ms(genotype.layers)      # what a derived network costs by the table

Every candidate of every searchable layer is built from the op table at the input the layer gets in the network the
compiler builds (widths, stride, resolution), and the fixed parts (stem, first block, head with its classifier) are
the compiled network's own modules; each runs alone, in eval mode, in the chosen runtime: onnxruntime (exported as
``dmc export`` exports, with the dynamo exporter, and run by a CPU session with ``threads`` intra-op threads,
sequential execution) or PyTorch eager (``torch.inference_mode()``, ``torch.set_num_threads(threads)``). After a
warm-up, the candidates of a layer run round-robin, ``repeats`` times each, so that the machine's noise falls on all
of them alike; the median and the spread of each are kept.

The table is written (atomically) after the fixed parts and after each layer: the same call with the same ``out_path``
and settings continues an interrupted measurement from the layers done.

Last, the part overhead (:attr:`LatencyTable.part_overhead`): ``calibration`` networks of the space (seeded random
choices per layer) are timed whole, as ``dmc profile --lut`` times them (:func:`network_runner`), and each gives
``(plain sum of its entries - measured) / (parts - 1)``, what every part's entry holds that a whole network pays
once (negative: what it pays more); the table keeps their median and spread, and its costs count the overhead
once. A complete table measured before this existed gets it when the same call is repeated.
"""

from __future__ import annotations

import dataclasses
import platform
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dmc.compiler import BuildArgs, CompiledNetwork
from dmc.errors import NamedSettingsError, SettingError
from dmc.families import family_of
from dmc.families.chain.genotype import ChainGenotype
from dmc.latency import RUNTIMES, LatencyTable, LatencyTableError, Timing, load_latency_table
from dmc.limits import MAX_INPUT_SIZE
from dmc.ops import OPS
from dmc.space import load_space
from dmc.version import __version__

WARMUP = 3
"""Untimed runs of every part before the timed ones (onnxruntime allocates its buffers on the first runs)."""

Progress = Callable[[int, int, str | None], None]
"""``on_progress(done, total, entry)``: after each measured entry (``stem``, ``layer 3 mbconv_k3_e6``, ...), with the
entries done (those of a resumed table included) and the total; once first with ``entry`` None."""


@dataclass
class _Part:
    """One module to time at one input shape; ``key`` names its computation (equal keys: one ONNX export)."""

    name: str
    module: nn.Module
    shape: tuple[int, ...]
    key: tuple[Any, ...]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_has_vnni() -> bool | None:
    """Whether the CPU has VNNI (int8 dot products: what onnxruntime's int8 kernels are fast with); None where
    /proc/cpuinfo cannot be read."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return bool(re.search(r"\b(avx512_vnni|avx_vnni|amx_int8)\b", flags))


def ort_session(path: str | Path, threads: int):
    """The onnxruntime CPU session tables are timed with: ``threads`` intra-op threads, sequential execution, worker
    threads sleeping between runs (spinning ones would steal the cores of the next part timed, as in
    :mod:`dmc.exporters.onnx`). Time whole networks with it too, so that they compare with their tables."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_part(module: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Exports ``module`` (eval mode) at ``example``'s shape as ``dmc export`` exports (the dynamo exporter, the
    exporter's default opset), input ``input``, output ``output``."""
    path = Path(path)
    torch.onnx.export(module.eval(), (example,), str(path), dynamo=True, input_names=["input"],
                      output_names=["output"], verbose=False)
    return path


def measure_latency_table(space: Any, width: float | None = None, image_size: int | None = None, batch: int = 1,
                          threads: int = 1, runtime: str = "onnxruntime", repeats: int = 20,
                          out_path: str | Path | None = None, on_progress: Progress | None = None, *,
                          num_classes: int = 1000, device: str = "cpu", calibration: int = 3) -> LatencyTable:
    """Measures the latency table of the chain ``space`` (a space or its name) at ``width`` (default: the space's)
    and ``image_size`` (default: its family's, 224); writes it to ``out_path`` after each layer, continuing the
    partial table found there when it was measured with the same settings (a table for other settings there is
    refused). ``calibration`` whole networks then fit the part overhead (0: none; the table's costs are then the
    plain medians). Returns the complete table."""
    space = load_space(space) if isinstance(space, (str, Path)) else space
    _check_settings(space, image_size, batch, threads, runtime, repeats, num_classes, device)
    sized = space.with_macro(width=width)
    size = image_size or family_of(space).input_size(sized.macro)
    version = _onnxruntime().__version__ if runtime == "onnxruntime" else torch.__version__
    table = LatencyTable(space=sized.name, space_hash=sized.content_hash, width=sized.macro.width, image_size=size,
                         batch=batch, num_classes=num_classes, cpu=cpu_model(), runtime=runtime,
                         runtime_version=version, threads=threads, repeats=repeats, dmc_version=__version__,
                         date=datetime.now(UTC).isoformat(timespec="seconds"), fixed=(),
                         candidates=sized.layer_candidates)
    if out_path is not None:
        table = _resumed(Path(out_path), table)
    fixed, layers = _parts(sized, size, batch, num_classes)
    total = len(fixed) + sum(len(layer) for layer in layers)
    done = len(table.fixed) + sum(len(layer) for layer in table.layers)
    report = on_progress or (lambda done, total, entry: None)
    report(done, total, None)
    with _measuring(runtime, threads) as time_parts:
        if not table.fixed:
            timings = time_parts(fixed, repeats)
            table = _save(dataclasses.replace(table, fixed=tuple(zip([p.name for p in fixed], timings))), out_path)
            for part in fixed:
                done += 1
                report(done, total, part.name)
        for layer in layers[len(table.layers):]:
            table = _save(table.with_layer(time_parts(layer, repeats)), out_path)
            for part in layer:
                done += 1
                report(done, total, part.name)
    if table.part_overhead is None and calibration:
        overhead = fit_part_overhead(table, sized, calibration, repeats)
        table = _save(dataclasses.replace(table, part_overhead=overhead), out_path)
    return table


def fit_part_overhead(table: LatencyTable, space: Any, networks: int = 3, repeats: int = 20,
                      seed: int = 0) -> Timing:
    """The part overhead of the complete ``table`` of ``space`` (at the table's width): ``networks`` networks of
    seeded random choices timed whole, interleaved, each giving ``(plain sum - measured median) / (parts - 1)``
    (negative where whole networks cost more than their parts); their median and spread."""
    table.check_complete()
    rng = random.Random(seed)
    chosen = [tuple(rng.choice(ops) for ops in table.candidates) for _ in range(networks)]
    parts = len(table.fixed) + len(table.candidates)
    with tempfile.TemporaryDirectory(prefix="dmc-latency-") as work:
        runs = []
        for i, layers in enumerate(chosen):
            genotype = ChainGenotype(layers, space.macro, space.name, space.content_hash)
            network = CompiledNetwork(genotype, BuildArgs(space.macro, table.num_classes))
            runs.append(network_runner(network, table.runtime, table.threads, table.batch, table.image_size,
                                       Path(work) / f"network{i}.onnx"))
        with torch_threads(table.threads), torch.inference_mode():
            times = interleaved_times_ms(runs, repeats)
    measured = [Timing.from_times(t).median_ms for t in times]
    return Timing.from_times([(table.plain_network_ms(layers) - ms) / max(parts - 1, 1)
                              for layers, ms in zip(chosen, measured)])


def network_runner(network: CompiledNetwork, runtime: str, threads: int, batch: int, image_size: int,
                   onnx_path: str | Path) -> Callable[[], object]:
    """One end-to-end run of ``network`` (eval mode) on a random batch in ``runtime``, as tables are compared with
    whole networks: for onnxruntime exported as ``dmc export`` exports (to ``onnx_path``, no parity check) and run in
    :func:`ort_session` with ``threads``; for torch the module itself (run it inside ``torch.inference_mode()`` with
    ``threads`` PyTorch threads)."""
    network = network.eval()
    example = torch.randn(batch, network.build_args.in_channels, image_size, image_size)
    if runtime == "torch":
        return lambda: network(example)
    from dmc.exporters.onnx import export_onnx  # imports onnx

    export_onnx(network, onnx_path, input_size=image_size, check=False)
    session, feeds = ort_session(onnx_path, threads), {"input": example.numpy()}
    return lambda: session.run(None, feeds)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """PyTorch's intra-op threads set to ``threads`` inside, restored after."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------- settings, resume
def _check_settings(space: Any, image_size: int | None, batch: int, threads: int, runtime: str, repeats: int,
                    num_classes: int, device: str) -> None:
    if device != "cpu":
        raise SettingError(f"{{device}} {device}: latency tables are measured on the CPU for now",
                           "leave {device} at cpu")
    if runtime not in RUNTIMES:
        raise SettingError(f"{{runtime}} {runtime!r} is unknown", f"choose {' or '.join(RUNTIMES)}")
    if getattr(space, "kind", None) != "chain":
        raise LatencyTableError(f"{space.name} is a {space.kind} space: latency tables are measured for chain "
                                "spaces (one candidate list per layer)", "choose a chain space, e.g. proxyless_s5")
    for name, value, high in (("image_size", image_size, MAX_INPUT_SIZE), ("batch", batch, 4096),
                              ("threads", threads, 1024), ("repeats", repeats, 100_000),
                              ("num_classes", num_classes, 1_000_000)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high):
            raise SettingError(f"{{{name}}} must be an integer from 1 to {high}, got {value!r}")


def _resumed(path: Path, table: LatencyTable) -> LatencyTable:
    """The partial (or complete) table at ``path`` when it was measured with ``table``'s settings; ``table`` when
    there is none."""
    if not path.exists():
        return table
    try:
        found = load_latency_table(path)
    except LatencyTableError as exc:
        raise LatencyTableError(f"{exc.message}; it is in the way of the table to write",
                                "write the table elsewhere, or delete the file") from None
    ours, theirs = table.settings(), found.settings()
    for key, value in ours.items():
        if theirs[key] != value:
            what = "other candidates" if key == "candidates" else f"{key} {theirs[key]}, not {value}"
            if found.complete:
                raise LatencyTableError(f"{path}: holds a complete latency table measured with {what}",
                                        "write to another file, or delete it to measure again")
            raise LatencyTableError(f"{path}: holds a partial latency table measured with {what}",
                                    "rerun with its settings to finish it, or write to another file")
    return found


def _save(table: LatencyTable, path: str | Path | None) -> LatencyTable:
    if path is not None:
        table.save(path)
    return table


# ---------------------------------------------------------------------------------------------- parts
def _parts(space: Any, image_size: int, batch: int, num_classes: int) -> tuple[list[_Part], list[list[_Part]]]:
    """The fixed parts, and every layer's candidates, each with the input it gets in the compiled network."""
    macro = space.macro
    genotype = ChainGenotype(tuple(ops[0] for ops in space.layer_candidates), macro, space.name, space.content_hash)
    network = CompiledNetwork(genotype, BuildArgs(macro, num_classes)).eval()
    network.check_input_size(image_size, image_size)
    shapes: dict[str, tuple[int, ...]] = {}
    watched = {"stem": network.stem, "first_block": network.stem1, "head": network.head_act,
               **{f"layer {i}": block for i, block in enumerate(network.blocks)}}

    def record(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            shapes.setdefault(name, tuple(args[0].shape))
        return hook

    hooks = [module.register_forward_pre_hook(record(name)) for name, module in watched.items() if module is not None]
    try:
        with torch.inference_mode():
            network(torch.zeros(batch, 3, image_size, image_size))
    finally:
        for hook in hooks:
            hook.remove()
    head = nn.Sequential(network.head_act, network.global_pool, nn.Flatten(1), network.classifier)
    fixed = [_Part(name, module, shapes[name], (name,))
             for name, module in (("stem", network.stem), ("first_block", network.stem1), ("head", head))
             if module is not None]
    layers = []
    for slot, ops in zip(macro.layer_slots(), space.layer_candidates):
        shape = shapes[f"layer {slot.index}"]
        layers.append([_Part(f"layer {slot.index} {op}",
                             OPS[op].build(slot.c_in, slot.c_out, slot.stride, affine=True, act=macro.activation),
                             shape, (op, slot.c_in, slot.c_out, slot.stride, macro.activation, shape))
                       for op in ops])
    return fixed, layers


# ---------------------------------------------------------------------------------------------- timing
@contextmanager
def _measuring(runtime: str, threads: int) -> Iterator[Callable[[list[_Part], int], list[Timing]]]:
    """Yields ``time_parts(parts, repeats)``: the timings of parts timed together in ``runtime``."""
    torch_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="dmc-latency-") as work:
        exported: dict[tuple[Any, ...], Path] = {}

        def runner(part: _Part) -> Callable[[], object]:
            example = torch.randn(part.shape)
            module = part.module.eval()
            if runtime == "torch":
                return lambda: module(example)
            if part.key not in exported:
                exported[part.key] = export_part(module, example, Path(work) / f"part{len(exported)}.onnx")
            session, feeds = ort_session(exported[part.key], threads), {"input": example.numpy()}
            return lambda: session.run(None, feeds)

        def time_parts(parts: list[_Part], repeats: int) -> list[Timing]:
            runs = [runner(part) for part in parts]
            with torch.inference_mode():
                return [Timing.from_times(times) for times in interleaved_times_ms(runs, repeats)]

        try:
            torch.set_num_threads(threads)
            yield time_parts
        finally:
            torch.set_num_threads(torch_threads)


def interleaved_times_ms(runs: list[Callable[[], object]], repeats: int, warmup: int = WARMUP) -> list[list[float]]:
    """Wall times in milliseconds of ``repeats`` calls of each of ``runs``, after ``warmup`` untimed ones, called
    round-robin (each round starting one further along), so that the machine's noise spreads over all of them."""
    for _ in range(warmup):
        for run in runs:
            run()
    times: list[list[float]] = [[] for _ in runs]
    for r in range(repeats):
        for j in range(len(runs)):
            k = (r + j) % len(runs)
            start = time.perf_counter()
            runs[k]()
            times[k].append((time.perf_counter() - start) * 1000)
    return times


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise NamedSettingsError("onnxruntime is not installed", "install dmc's export extra (pip install "
                                 "'dmc[export]'), or measure with {runtime} torch") from None
    return onnxruntime
