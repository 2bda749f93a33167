"""The latency look-up table of a chain search space: what every candidate of every searchable layer costs, and the
fixed parts (stem, first block, head with its classifier), measured in one runtime on one machine.

JSON (``dmc latency table`` writes it; :mod:`dmc.exporters.latency` measures it)::

    {"format": "dmc.latency_table", "version": 1,
     "space": {"name": "proxyless_s5", "hash": "...", "width": 0.25},     # hash: at that width
     "input": {"image_size": 224, "batch": 1, "num_classes": 1000},
     "measured_on": {"cpu": "...", "runtime": "onnxruntime", "runtime_version": "1.32.0", "threads": 1,
                     "repeats": 20, "dmc_version": "...", "date": "2025-01-01T00:00:00+00:00"},
     "fixed": {"stem": TIMING, "first_block": TIMING, "head": TIMING},
     "candidates": [["mbconv_k3_e3", ...], ...],                          # every layer's, the rows of alpha
     "layers": [{"mbconv_k3_e3": TIMING, ...}, ...],                      # measured so far, in order
     "part_overhead": TIMING}                                             # optional: see below

where ``TIMING`` is ``{"median_ms", "min_ms", "q1_ms", "q3_ms", "max_ms"}`` over the timed runs. A table with
fewer ``layers`` than ``candidates`` is partial: a measurement interrupted, which the same command finishes.

**The part overhead.** Every part of the table was timed as its own model, in its own call of the runtime; each
entry holds, besides what the part adds to a whole network, a cost a whole network pays once, not once per part
(the call, its input and output, caches: the plain sum of a table over-predicts whole networks by 10-15% in
onnxruntime). ``part_overhead`` is that cost per part, fitted when the table is measured on a few whole networks
of the space (``(plain sum - measured) / (parts - 1)``; its median and spread over them); it is negative where a
whole network costs more than its parts (PyTorch eager). The costs the table
gives are corrected by it: every entry is its median less the overhead (at least 0), the fixed parts cost their
medians' sum less the overhead for all but one of them, so that a network costs ``fixed_ms + sum of its entries``
with the overhead counted once. A table without the field (measured before it existed) has overhead 0: its costs
are the plain medians, as before.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmc.errors import InvalidInputError
from dmc.io import atomic_write_text, read_json

LATENCY_TABLE_FORMAT = "dmc.latency_table"
LATENCY_TABLE_VERSION = 1
RUNTIMES = ("onnxruntime", "torch")
FIXED_PARTS = ("stem", "first_block", "head")
"""The fixed parts of a chain network, in forward order (``first_block`` only where the skeleton has one)."""


class LatencyTableError(InvalidInputError):
    """A latency table is malformed, partial where a complete one is needed, or measured for another network."""


@dataclass(frozen=True)
class Timing:
    """Wall times of one part in milliseconds: the median and the spread of the timed runs (extremes and quartiles)."""

    median_ms: float
    min_ms: float
    q1_ms: float
    q3_ms: float
    max_ms: float

    @classmethod
    def from_times(cls, times_ms: Sequence[float]) -> Timing:
        times = sorted(round(t, 6) for t in times_ms)  # nanoseconds: finer than any timer behind them
        if not times:
            raise ValueError("no timed runs")
        q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else times * 3
        return cls(statistics.median(times), times[0], q1, q3, times[-1])

    @property
    def spread_ms(self) -> tuple[float, float]:
        """(fastest, slowest) run."""
        return self.min_ms, self.max_ms

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    def to_dict(self) -> dict[str, float]:
        return {"median_ms": self.median_ms, "min_ms": self.min_ms, "q1_ms": self.q1_ms, "q3_ms": self.q3_ms,
                "max_ms": self.max_ms}


@dataclass(frozen=True)
class LatencyTable:
    """A (possibly partial) latency table; see the module's docstring for its file."""

    space: str
    space_hash: str
    """The space's ``content_hash`` at :attr:`width` (``space.with_macro(width=...)``)."""
    width: float
    image_size: int
    batch: int
    num_classes: int
    cpu: str
    runtime: str
    runtime_version: str
    threads: int
    repeats: int
    dmc_version: str
    date: str
    fixed: tuple[tuple[str, Timing], ...]
    """(part, timing) in forward order: stem, first block (if any), head with the classifier."""
    candidates: tuple[tuple[str, ...], ...]
    """Every searchable layer's candidates (``space.layer_candidates``, the rows of alpha)."""
    layers: tuple[tuple[Timing, ...], ...] = ()
    """The measured layers, in order, each candidate's timing in :attr:`candidates`' order."""
    part_overhead: Timing | None = None
    """What every part's entry holds beyond what the part adds to a whole network (fitted on whole networks when
    the table is measured); None (overhead 0) for tables measured before dmc measured it. See the module's
    docstring."""
    source: str = field(default="", compare=False)
    """The file it was read from (for errors), or empty."""

    def __post_init__(self) -> None:
        for name in ("fixed", "candidates", "layers"):
            object.__setattr__(self, name, tuple(tuple(item) for item in getattr(self, name)))
        if self.runtime not in RUNTIMES:
            raise LatencyTableError(f"runtime {self.runtime!r} is unknown (known: {', '.join(RUNTIMES)})")
        if len(self.layers) > len(self.candidates):
            raise LatencyTableError(f"{len(self.layers)} measured layers for a space of {len(self.candidates)}")
        for i, (timings, ops) in enumerate(zip(self.layers, self.candidates)):
            if len(timings) != len(ops):
                raise LatencyTableError(f"layer {i}: {len(timings)} timings for {len(ops)} candidates")

    # ------------------------------------------------------------------------------------------ state
    @property
    def complete(self) -> bool:
        return len(self.layers) == len(self.candidates)

    def settings(self) -> dict[str, Any]:
        """What a measurement was asked for and where it ran: two measurements with equal settings may be
        continued one by the other."""
        return {"space": self.space, "width": self.width, "space hash": self.space_hash,
                "image size": self.image_size, "batch": self.batch, "classes": self.num_classes, "cpu": self.cpu,
                "runtime": self.runtime, "runtime version": self.runtime_version, "threads": self.threads,
                "repeats": self.repeats, "candidates": self.candidates}

    def with_layer(self, timings: Sequence[Timing]) -> LatencyTable:
        """This table with the next layer measured."""
        return dataclasses.replace(self, layers=(*self.layers, tuple(timings)))

    # ------------------------------------------------------------------------------------------ costs
    @property
    def _name(self) -> str:
        return f"{self.source}: the latency table" if self.source else "the latency table"

    def check_complete(self) -> None:
        if not self.complete:
            raise LatencyTableError(f"{self._name} of {self.space} is partial: {len(self.layers)} of "
                                    f"{len(self.candidates)} layers measured",
                                    "rerun the same `dmc latency table` command (same -o) to finish it")

    def check_fits(self, space: Any, image_size: int, *, width: float | None = None) -> None:
        """Refuses a table measured for another space (hash), width or input size than ``space`` (at the width it
        will run, or at ``width``) at ``image_size``, or a partial one: one line naming both values and the fix."""
        if width is not None:
            space = space.with_macro(width=width)
        fix = f"measure one: dmc latency table {space.name} --width {space.macro.width:g} --image-size {image_size}"
        if space.macro.width != self.width:
            raise LatencyTableError(f"{self._name} was measured at width {self.width:g}, not "
                                    f"{space.macro.width:g}", fix)
        if space.content_hash != self.space_hash:
            measured = self.space if self.space == space.name else f"space {self.space}"
            raise LatencyTableError(f"{self._name} was measured for {measured} (hash {self.space_hash}), not "
                                    f"{space.name} (hash {space.content_hash})", fix)
        if image_size != self.image_size:
            raise LatencyTableError(f"{self._name} was measured at input size {self.image_size}, not "
                                    f"{image_size}", fix)
        self.check_complete()

    @property
    def part_overhead_ms(self) -> float:
        """The cost per part (median) that the costs are corrected by; 0 for a table without it."""
        return self.part_overhead.median_ms if self.part_overhead is not None else 0.0

    @property
    def fixed_ms(self) -> float:
        """What every network of the space costs besides its layers: stem, first block, head and classifier, with
        the part overhead counted once (the medians' sum less the overhead for all but one part)."""
        if not self.fixed:
            return 0.0
        return sum(timing.median_ms for _, timing in self.fixed) - (len(self.fixed) - 1) * self.part_overhead_ms

    def _entry_ms(self, timing: Timing) -> float:
        return max(timing.median_ms - self.part_overhead_ms, 0.0)

    def candidate_costs(self) -> list[list[float]]:
        """Milliseconds of every candidate of every layer (medians less the part overhead, at least 0), in the order
        of the rows of alpha."""
        self.check_complete()
        return [[self._entry_ms(timing) for timing in layer] for layer in self.layers]

    def network_ms(self, chosen: Sequence[str]) -> float:
        """What the network with one ``chosen`` operation per layer (a chain genotype's ``layers``) costs by the
        table: :attr:`fixed_ms` plus the chosen candidates' entries (:meth:`candidate_costs`), so that the part
        overhead is counted once."""
        total = self.fixed_ms  # summed in this order, as the search's CostTable sums a derived network
        for timing in self._chosen(chosen):
            total += self._entry_ms(timing)
        return total

    def plain_network_ms(self, chosen: Sequence[str]) -> float:
        """The plain sum of the medians of the fixed parts and the ``chosen`` candidates: every part with its own
        overhead (what :meth:`network_ms` gives for a table without one)."""
        return sum(timing.median_ms for _, timing in self.fixed) + sum(t.median_ms for t in self._chosen(chosen))

    def _chosen(self, chosen: Sequence[str]) -> list[Timing]:
        self.check_complete()
        if len(chosen) != len(self.candidates):
            raise LatencyTableError(f"{len(chosen)} operations for the {len(self.candidates)} layers of "
                                    f"{self.space}", "give one operation per searchable layer")
        timings = []
        for i, (op, ops, layer) in enumerate(zip(chosen, self.candidates, self.layers)):
            if op not in ops:
                raise LatencyTableError(f"layer {i}: {op!r} is not one of its candidates in the latency table "
                                        f"({', '.join(ops)})")
            timings.append(layer[ops.index(op)])
        return timings

    # ------------------------------------------------------------------------------------------ data
    def to_dict(self) -> dict[str, Any]:
        overhead = {"part_overhead": self.part_overhead.to_dict()} if self.part_overhead is not None else {}
        return {
            "format": LATENCY_TABLE_FORMAT, "version": LATENCY_TABLE_VERSION,
            "space": {"name": self.space, "hash": self.space_hash, "width": self.width},
            "input": {"image_size": self.image_size, "batch": self.batch, "num_classes": self.num_classes},
            "measured_on": {"cpu": self.cpu, "runtime": self.runtime, "runtime_version": self.runtime_version,
                            "threads": self.threads, "repeats": self.repeats, "dmc_version": self.dmc_version,
                            "date": self.date},
            "fixed": {name: timing.to_dict() for name, timing in self.fixed},
            "candidates": [list(ops) for ops in self.candidates],
            "layers": [{op: timing.to_dict() for op, timing in zip(ops, layer)}
                       for ops, layer in zip(self.candidates, self.layers)],
            **overhead,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "") -> LatencyTable:
        """Reads :meth:`to_dict`'s mapping (from the file ``source``); every problem is one line naming the file and
        the field."""
        return _Reader(source).table(data)

    def save(self, path: str | Path) -> Path:
        """Writes the JSON table atomically (a reader, or a crash, never sees half a table)."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")


def load_latency_table(path: str | Path) -> LatencyTable:
    """Reads a latency table file (complete or partial); a missing, corrupt, foreign or newer file is one
    :class:`LatencyTableError` line."""
    return LatencyTable.from_dict(read_json(path, "latency table", LatencyTableError), str(path))


class _Reader:
    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, problem: str, hint: str | None = None) -> LatencyTableError:
        return LatencyTableError(f"{self.source or 'latency table'}: {where}{': ' if where else ''}{problem}", hint)

    def mapping(self, value: Any, where: str, keys: set[str], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        if not keys <= set(value) <= keys | optional:
            odd = sorted(set(value) - keys - optional) or sorted(keys - set(value))
            problem = "unknown field" if set(value) - keys else "missing field"
            raise self.fail(f"{where}.{odd[0]}" if where else odd[0], problem)
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"expected text, got {value!r}")
        return value

    def integer(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(where, f"expected a positive integer, got {value!r}")
        return value

    def number(self, value: Any, where: str, positive: bool = True) -> float:
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and (
            value > 0 if positive else value >= 0)
        if not ok:
            raise self.fail(where, f"expected a {'positive' if positive else 'non-negative'} number, got {value!r}")
        return float(value)

    def signed(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(where, f"expected a number, got {value!r}")
        return float(value)

    def timing(self, value: Any, where: str, signed: bool = False) -> Timing:
        data = self.mapping(value, where, {"median_ms", "min_ms", "q1_ms", "q3_ms", "max_ms"})
        if signed:  # a correction, not a time: any finite number
            timing = Timing(*(self.signed(data[k], f"{where}.{k}") for k in ("median_ms", "min_ms", "q1_ms", "q3_ms",
                                                                              "max_ms")))
        else:
            timing = Timing(self.number(data["median_ms"], f"{where}.median_ms"),
                            *(self.number(data[k], f"{where}.{k}", positive=False) for k in ("min_ms", "q1_ms",
                                                                                              "q3_ms", "max_ms")))
        if not timing.min_ms <= timing.q1_ms <= timing.median_ms <= timing.q3_ms <= timing.max_ms:
            raise self.fail(where, "times out of order (min <= q1 <= median <= q3 <= max)")
        return timing

    def table(self, data: Any) -> LatencyTable:
        if not isinstance(data, dict) or data.get("format") != LATENCY_TABLE_FORMAT:
            raise self.fail("", f"not a dmc latency table (no \"format\": \"{LATENCY_TABLE_FORMAT}\")",
                            "measure one with `dmc latency table SPACE -o FILE`")
        if data.get("version") != LATENCY_TABLE_VERSION:
            raise self.fail("", f"latency table version {data.get('version')!r} is not supported (this dmc reads "
                                f"version {LATENCY_TABLE_VERSION})", "measure the table again with this dmc")
        top = self.mapping(data, "", {"format", "version", "space", "input", "measured_on", "fixed", "candidates",
                                      "layers"}, frozenset({"part_overhead"}))  # tables before it: overhead 0
        space = self.mapping(top["space"], "space", {"name", "hash", "width"})
        size = self.mapping(top["input"], "input", {"image_size", "batch", "num_classes"})
        on = self.mapping(top["measured_on"], "measured_on", {"cpu", "runtime", "runtime_version", "threads",
                                                              "repeats", "dmc_version", "date"})
        if on["runtime"] not in RUNTIMES:
            raise self.fail("measured_on.runtime", f"{on['runtime']!r} is unknown (known: {', '.join(RUNTIMES)})")
        fixed = top["fixed"]
        if not isinstance(fixed, dict) or not {"stem", "head"} <= set(fixed) or \
                list(fixed) != [p for p in FIXED_PARTS if p in fixed]:
            raise self.fail("fixed", f"expected a mapping of the parts {', '.join(FIXED_PARTS)} (in that order)")
        candidates = top["candidates"]
        if not isinstance(candidates, list) or not candidates or not all(
                isinstance(ops, list) and ops and all(isinstance(op, str) for op in ops) for ops in candidates):
            raise self.fail("candidates", "expected one non-empty list of operation names per layer")
        layers = top["layers"]
        if not isinstance(layers, list) or len(layers) > len(candidates):
            raise self.fail("layers", f"expected a list of at most {len(candidates)} measured layers")
        measured = []
        for i, layer in enumerate(layers):
            entries = self.mapping(layer, f"layers[{i}]", set(candidates[i]))
            measured.append(tuple(self.timing(entries[op], f"layers[{i}].{op}") for op in candidates[i]))
        return LatencyTable(
            space=self.text(space["name"], "space.name"), space_hash=self.text(space["hash"], "space.hash"),
            width=self.number(space["width"], "space.width"),
            image_size=self.integer(size["image_size"], "input.image_size"),
            batch=self.integer(size["batch"], "input.batch"),
            num_classes=self.integer(size["num_classes"], "input.num_classes"),
            cpu=self.text(on["cpu"], "measured_on.cpu"), runtime=on["runtime"],
            runtime_version=self.text(on["runtime_version"], "measured_on.runtime_version"),
            threads=self.integer(on["threads"], "measured_on.threads"),
            repeats=self.integer(on["repeats"], "measured_on.repeats"),
            dmc_version=self.text(on["dmc_version"], "measured_on.dmc_version"),
            date=self.text(on["date"], "measured_on.date"),
            fixed=tuple((name, self.timing(value, f"fixed.{name}")) for name, value in fixed.items()),
            candidates=tuple(tuple(ops) for ops in candidates), layers=tuple(measured),
            part_overhead=self.timing(top["part_overhead"], "part_overhead", signed=True) if "part_overhead" in top
            else None,
            source=self.source)
