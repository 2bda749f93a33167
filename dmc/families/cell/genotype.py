"""Cell genotypes (the DARTS and NAS-Bench-201 families): the cells a search derives and the compiler builds.

A :class:`Genotype` is frozen and validated on construction. It reads and writes

- dmc's versioned JSON (``{"format": "dmc.genotype", "version": 1, ...}``),
- the DARTS text of published code, ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5],
  reduce=[...], reduce_concat=range(2, 6))``, parsed as data (never evaluated),
- the NAS-Bench-201 string ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|``.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmc.families.cell.macro import Macro
from dmc.families.genotype_file import (
    GENOTYPE_FORMAT,
    GENOTYPE_VERSION,
    GenotypeError,
    check_header,
    check_space_fields,
    space_fields,
)
from dmc.io import atomic_write_text
from dmc.limits import MAX_CELL_NODES, MAX_CELL_STATES
from dmc.ops import OPS

KINDS = ("darts", "nb201")
"""The cell families."""
CELL_TYPES = ("normal", "reduce")


Edge = tuple[str, int]


@dataclass(frozen=True)
class CellGenotype:
    """One derived cell: for each intermediate node, its (operation, input index) pairs.

    Input indices count the cell inputs first (0, 1 for DARTS; 0 for NAS-Bench-201), then the
    intermediate nodes in order. ``concat`` lists the node indices joined into the cell output.
    """

    nodes: tuple[tuple[Edge, ...], ...]
    concat: tuple[int, ...]

    @property
    def edges(self) -> tuple[Edge, ...]:
        return tuple(edge for node in self.nodes for edge in node)


@dataclass(frozen=True)
class Genotype:
    """A derived architecture: a normal cell, a reduction cell (DARTS family only), and where it came from.

    ``kind`` names the network family the compiler builds around the cells: ``darts`` (two-input cells,
    reduction cells) or ``nb201`` (one-input cells joined by residual blocks).
    """

    normal: CellGenotype
    reduce: CellGenotype | None = None
    kind: str = "darts"
    space: str | None = None
    space_hash: str | None = None
    macro: Macro | None = None
    """The macro network the cells were searched in (stem, reduction positions, width, depth); the compiler
    builds the same wiring. None for published cells: DARTS's own macro network."""

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def inputs(self) -> int:
        return 2 if self.kind == "darts" else 1

    @property
    def cells(self) -> dict[str, CellGenotype]:
        return {"normal": self.normal} | ({"reduce": self.reduce} if self.reduce is not None else {})

    @property
    def groups(self) -> tuple[str, ...]:
        """The cell types, each derived from its own architecture weights."""
        return tuple(self.cells)

    def skip_count(self, group: str = "normal") -> int:
        """How many edges of the ``group`` cell are skip connections."""
        return sum(op == "skip_connect" for op, _ in self.cells[group].edges)

    @property
    def deterministic(self) -> bool:
        """False when a cell keeps an op with random output ('noise')."""
        return all(OPS[op].deterministic for cell in self.cells.values() for op, _ in cell.edges)

    def describe(self) -> str:
        """One line: the NAS-Bench-201 string, DARTS text, or (other wirings) the cells' (op, input) lists."""
        if self.kind == "nb201":
            return self.to_nb201_string()
        if all(len(node) == 2 for cell in self.cells.values() for node in cell.nodes):
            return self.to_darts_text()
        return "; ".join(f"{name}: {[list(node) for node in cell.nodes]} concat {list(cell.concat)}"
                         for name, cell in self.cells.items())

    # ------------------------------------------------------------------------------------ dmc JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": GENOTYPE_FORMAT,
            "version": GENOTYPE_VERSION,
            "kind": self.kind,
            "space": {"name": self.space, "hash": self.space_hash},
            **({"macro": self.macro.to_dict()} if self.macro is not None else {}),
            "cells": {name: {"nodes": [[[op, j] for op, j in node] for node in cell.nodes],
                             "concat": list(cell.concat)}
                      for name, cell in self.cells.items()},
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "genotype") -> Genotype:
        """Reads :meth:`to_dict`'s mapping (any family's genotype file: :func:`dmc.genotype.genotype_from_dict`)."""
        check_header(data, source)
        return cls._cells(data, source)

    @classmethod
    def _cells(cls, data: dict[str, Any], source: str) -> Genotype:
        """A cell genotype from :meth:`to_dict`'s mapping (format and version checked)."""
        unknown = sorted(set(data) - {"format", "version", "kind", "space", "macro", "cells"})
        if unknown:
            raise GenotypeError(f"{source}: unknown field {unknown[0]!r} in a genotype")
        space, space_hash = space_fields(data, source)
        cells = data.get("cells")
        if not isinstance(cells, dict):
            raise GenotypeError(f"{source}: cells: expected a mapping of cell types to cells, got "
                                f"{type(cells).__name__}")
        for name in cells:
            if name not in CELL_TYPES:
                raise GenotypeError(f"{source}: cells.{name}: unknown cell type (allowed: {', '.join(CELL_TYPES)})")
        try:
            cells = {
                name: CellGenotype(tuple(tuple((_op(op, f"cells.{name}.nodes[{n}]"),
                                                _index(j, f"cells.{name}.nodes[{n}]")) for op, j in node)
                                         for n, node in enumerate(cell["nodes"])),
                                   tuple(_index(i, f"cells.{name}.concat") for i in cell["concat"]))
                for name, cell in cells.items()
            }
            macro = Macro.from_dict(data["macro"], f"{source}: macro") if data.get("macro") is not None else None
            return cls(normal=cells.pop("normal"), reduce=cells.pop("reduce", None), kind=data.get("kind", "darts"),
                       space=space, space_hash=space_hash, macro=macro)
        except GenotypeError as exc:
            raise GenotypeError(f"{source}: {exc.message}", exc.hint) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise GenotypeError(f"{source}: malformed genotype ({type(exc).__name__}: {exc})",
                                "cells.normal needs 'nodes' ([[op, input], ...] per node) and 'concat'") from None

    def save(self, path: str | Path) -> Path:
        """Writes the JSON genotype atomically."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    # ------------------------------------------------------------------------------------ DARTS text
    @classmethod
    def from_darts(cls, normal, normal_concat, reduce, reduce_concat, **meta) -> Genotype:
        """From the fields of DARTS's ``Genotype`` namedtuple: flat edge lists, two edges per node."""
        def cell(edges, concat, name) -> CellGenotype:
            try:
                edges = [(_op(op, name), _index(j, name)) for op, j in edges]
                concat = tuple(_index(i, f"{name}_concat") for i in concat)
            except (TypeError, ValueError):
                raise GenotypeError(f"{name}: expected a list of (op, input) pairs and a list of node indices") \
                    from None
            if len(edges) % 2:
                raise GenotypeError(f"{name}: DARTS cells have two edges per node, got {len(edges)} edges")
            return CellGenotype(tuple(tuple(edges[i:i + 2]) for i in range(0, len(edges), 2)), concat)

        return cls(cell(normal, normal_concat, "normal"), cell(reduce, reduce_concat, "reduce"), kind="darts",
                   **meta)

    @classmethod
    def from_darts_text(cls, text: str, **meta) -> Genotype:
        """Parses ``Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)`` as data."""
        try:
            tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as exc:
            raise GenotypeError(f"not a DARTS genotype: {exc.msg}", "expected Genotype(normal=[...], ...)") from None
        except (RecursionError, MemoryError):
            raise GenotypeError("not a DARTS genotype: nested too deeply", "expected Genotype(normal=[...], ...)") \
                from None
        if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"
                and not tree.args):
            raise GenotypeError("not a DARTS genotype", "expected Genotype(normal=[...], normal_concat=[...], "
                                                        "reduce=[...], reduce_concat=[...])")
        if any(kw.arg is None for kw in tree.keywords):  # Genotype(**fields): not data
            raise GenotypeError("not a DARTS genotype: **arguments are not data", "write out its four fields")
        fields = {kw.arg: _literal(kw.value) for kw in tree.keywords if kw.arg is not None}
        required = {"normal", "normal_concat", "reduce", "reduce_concat"}
        if set(fields) != required:
            raise GenotypeError(f"DARTS genotype fields {sorted(fields)} should be {sorted(required)}")
        return cls.from_darts(**fields, **meta)

    def to_darts_text(self) -> str:
        reduce = self.reduce  # never None in a darts genotype
        if self.kind != "darts" or reduce is None or any(len(node) != 2 for c in self.cells.values()
                                                         for node in c.nodes):
            raise GenotypeError("only DARTS-family genotypes with two edges per node have a DARTS text form")
        return (f"Genotype(normal={list(self.normal.edges)}, normal_concat={list(self.normal.concat)}, "
                f"reduce={list(reduce.edges)}, reduce_concat={list(reduce.concat)})")

    # ------------------------------------------------------------------------------------ NAS-Bench-201
    @classmethod
    def from_nb201_string(cls, text: str, **meta) -> Genotype:
        """Parses ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``: node i lists its edges from nodes 0..i-1."""
        nodes = []
        for part in text.strip().split("+"):
            items = [item for item in part.strip().strip("|").split("|") if item]
            edges = []
            for item in items:
                op, sep, j = item.partition("~")
                if not sep or not (j.isascii() and j.isdigit()):
                    raise GenotypeError(f"NAS-Bench-201 string: {item!r} is not 'op~input'")
                edges.append((op, int(j)))
            nodes.append(tuple(edges))
        return cls(CellGenotype(tuple(nodes), (len(nodes),)), kind="nb201", **meta)

    def to_nb201_string(self) -> str:
        if self.kind != "nb201":
            raise GenotypeError("only nb201 genotypes have a NAS-Bench-201 string")
        return "+".join("|" + "|".join(f"{op}~{j}" for op, j in node) + "|" for node in self.normal.nodes)


def _literal(node: ast.expr) -> Any:
    """Lists/tuples of (str, int) pairs, lists of ints, or ``range(a, b)``: nothing else is accepted."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
            and not node.keywords:
        bounds = [a.value for a in node.args if isinstance(a, ast.Constant) and type(a.value) is int]
        if len(bounds) == len(node.args):
            try:
                indices = range(*bounds)
            except (TypeError, ValueError) as exc:
                raise GenotypeError(f"{ast.unparse(node)}: {exc}") from None
            if len(indices) > MAX_CELL_STATES:  # checked before it is materialised: range(0, 3000000000) is 3e9 ints
                raise GenotypeError(f"{ast.unparse(node)}: {len(indices)} indices, more than a cell has states "
                                    f"(at most {MAX_CELL_STATES})")
            return list(indices)
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise GenotypeError(f"unsupported expression in DARTS genotype: {ast.unparse(node)[:200]}") from None


def _op(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise GenotypeError(f"{where}: operation {value!r} is not a name",
                            f"known operations: {', '.join(OPS.names())}")
    return value


def _index(value: Any, where: str) -> int:
    """A node or input index as written: an integer (1.9 or "1" is refused, not truncated or converted)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise GenotypeError(f"{where}: index {value!r} is not an integer")
    return value


def _validate(genotype: Genotype) -> None:
    check_space_fields(genotype.space, genotype.space_hash)
    if genotype.kind not in KINDS:
        raise GenotypeError(f"kind {genotype.kind!r} is not supported (allowed: {', '.join(KINDS)})")
    if (genotype.reduce is None) != (genotype.kind == "nb201"):
        raise GenotypeError("darts genotypes need a reduction cell; nb201 genotypes have none")
    if genotype.macro is not None and genotype.macro.kind != genotype.kind:
        raise GenotypeError(f"macro: a {genotype.kind} genotype cannot have a {genotype.macro.kind} macro network")
    for name, cell in genotype.cells.items():
        if not cell.nodes:
            raise GenotypeError(f"cells.{name}: no nodes")
        if len(cell.nodes) > MAX_CELL_NODES:
            raise GenotypeError(f"cells.{name}: {len(cell.nodes)} nodes, more than dmc builds (at most "
                                f"{MAX_CELL_NODES})")
        n_states = genotype.inputs + len(cell.nodes)
        for n, node in enumerate(cell.nodes):
            if not node:
                raise GenotypeError(f"cells.{name}.nodes[{n}]: a node needs at least one edge")
            index = genotype.inputs + n
            for op, j in node:
                if op not in OPS:
                    raise GenotypeError(f"cells.{name}.nodes[{n}]: unknown op {op!r}",
                                        f"known operations: {', '.join(OPS.names())}")
                if not 0 <= j < index:
                    raise GenotypeError(f"cells.{name}.nodes[{n}]: input {j} of node {index} points forward or "
                                        f"out of range (allowed: 0..{index - 1})")
        if not cell.concat:
            raise GenotypeError(f"cells.{name}.concat: empty: the cell would have no output")
        for i in cell.concat:
            if not 0 <= i < n_states:
                raise GenotypeError(f"cells.{name}.concat: {i} is not a state of the cell (0..{n_states - 1})")
        if len(set(cell.concat)) != len(cell.concat):
            raise GenotypeError(f"cells.{name}.concat: a state is listed twice: {list(cell.concat)}")
