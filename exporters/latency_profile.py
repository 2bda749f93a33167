"""A chain network's latency predicted by a latency table next to its measured end-to-end latency.

    table = load_latency_table("lut.json")
    report = profile_against_table(build_network(genotype), table, repeats=20)
    report["predicted_ms"], report["measured_ms"]["median_ms"], report["relative_error"]

The network must be one the table covers: a chain network of the table's space (its skeleton at the table's width,
every layer's operation among that layer's candidates; a genotype that records its space's hash must record the
table's), at the table's input size, with the table's classifier. It is timed whole in the table's runtime, threads
and batch: for onnxruntime exported as ``dmc export`` exports (the dynamo exporter, dynamic batch) and run in the
session the table's parts ran in (:func:`dmc.exporters.latency.ort_session`); for torch in PyTorch eager.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from dmc.compiler import CompiledNetwork
from dmc.errors import InvalidInputError
from dmc.exporters.latency import WARMUP, _onnxruntime, cpu_model, interleaved_times_ms, network_runner, torch_threads
from dmc.latency import LatencyTable, LatencyTableError, Timing
from dmc.space import load_space


def check_network_fits(network: CompiledNetwork, table: LatencyTable, image_size: int | None = None,
                       space: Any = None) -> int:
    """Refuses, in one line with the fix, a network the table does not cover (see the module's docstring); returns
    the input size to time it at (``image_size``, default the table's). ``space``: the table's space (default: the
    bundled space of the table's name)."""
    genotype = network.genotype
    if genotype.kind != "chain":
        raise LatencyTableError(f"the network ({network.build_args.describe()}) is not a chain network: latency "
                                "tables cover chain networks", f"profile a genotype of {table.space}")
    space = load_space(space if space is not None else table.space)
    size = image_size or table.image_size
    macro = network.build_args.macro
    table.check_fits(space, size, width=macro.width)  # width, the space's hash, input size, complete
    sized = space.with_macro(width=macro.width)
    fix = f"profile a network of {table.space} (e.g. one `dmc derive` gives), or measure a table of its own space"
    if genotype.space_hash is not None:
        searched = space.with_macro(width=genotype.macro.width)
        if (genotype.space, genotype.space_hash) != (space.name, searched.content_hash):
            raise LatencyTableError(f"the network's genotype comes from space {genotype.space} (hash "
                                    f"{genotype.space_hash}), not the table's {space.name} (hash "
                                    f"{searched.content_hash} at width {searched.macro.width:g})", fix)
    elif genotype.space not in (None, space.name):
        raise LatencyTableError(f"the network's genotype comes from space {genotype.space}, not the table's "
                                f"{space.name}", fix)
    if macro != sized.macro:
        raise LatencyTableError(f"the network's skeleton ({len(genotype.layers)} layers) is not the one of "
                                f"{space.name} ({len(sized.layer_candidates)} layers), so the table does not cover "
                                "it", fix)
    for i, (op, ops) in enumerate(zip(genotype.layers, table.candidates)):
        if op not in ops:
            raise LatencyTableError(f"the network's layer {i} is {op!r}, not one of the table's candidates there "
                                    f"({', '.join(ops)})", fix)
    classes = network.build_args.num_classes
    if classes != table.num_classes:
        raise LatencyTableError(f"the table was measured with a {table.num_classes}-class classifier, the network "
                                f"has {classes} classes", f"measure one: dmc latency table {table.space} --width "
                                f"{table.width:g} --image-size {size} --num-classes {classes}")
    return size


def profile_against_table(network: CompiledNetwork, table: LatencyTable, repeats: int = 20, *,
                          image_size: int | None = None, space: Any = None) -> dict[str, Any]:
    """The latency ``table`` predicts for the chain ``network`` next to the network's measured end-to-end latency
    (median and spread of ``repeats`` timed runs after a warm-up) in the table's runtime, threads and batch, and the
    relative error ``predicted / measured - 1``. A network the table does not cover is refused in one line
    (:func:`check_network_fits`). The result is JSON-ready."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InvalidInputError(f"repeats={repeats!r}: time the network at least once", "pass repeats >= 1")
    size = check_network_fits(network, table, image_size, space)
    predicted = table.network_ms(network.genotype.layers)
    with tempfile.TemporaryDirectory(prefix="dmc-profile-") as work:
        run = network_runner(network, table.runtime, table.threads, table.batch, size, Path(work) / "network.onnx")
        with torch_threads(table.threads), torch.inference_mode():
            measured = Timing.from_times(interleaved_times_ms([run], repeats)[0])
    version = torch.__version__ if table.runtime == "torch" else _onnxruntime().__version__
    return {
        "network": network.build_args.describe(), "layers": list(network.genotype.layers),
        "predicted_ms": predicted, "plain_sum_ms": table.plain_network_ms(network.genotype.layers),
        "measured_ms": measured.to_dict(), "relative_error": predicted / measured.median_ms - 1,
        "measured_on": {"cpu": cpu_model(), "runtime": table.runtime, "runtime_version": version,
                        "threads": table.threads, "batch": table.batch, "image_size": size, "repeats": repeats,
                        "warmup": WARMUP},
        "table": table_metadata(table),
    }


def table_metadata(table: LatencyTable) -> dict[str, Any]:
    """What a table was measured for and on (its file's ``space``, ``input`` and ``measured_on``), and its part
    overhead."""
    data = table.to_dict()
    return {"source": table.source or None, "space": data["space"], "input": data["input"],
            "measured_on": data["measured_on"], "part_overhead": data.get("part_overhead"),
            "part_overhead_ms": table.part_overhead_ms,
            "fixed_ms": table.fixed_ms}
