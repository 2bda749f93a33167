"""Cell search spaces (``kind: cell``, the DARTS and NAS-Bench-201 families): a spec validated into a frozen
:class:`CellSpace`.

A spec is complete on its own. Every problem is reported as one line naming the file, the field path
and the allowed values, e.g. ``spaces/my.yaml: cell.normal.edges[3][1]: unknown op 'sep_conv_9x9' (known: ...)``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from dmc.errors import InvalidInputError
from dmc.families.cell.macro import MACRO_KINDS, STEMS, Macro
from dmc.families.settings import SIZE_SETTINGS, check_family_settings
from dmc.limits import MAX_CELL_NODES, MAX_CHANNELS, MAX_LAYERS, MAX_STEM_MULTIPLIER
from dmc.ops import OPS
from dmc.spec_checks import SPACE_FORMAT, SpecChecks

DERIVE_RULES = ("top_k", "all")


@dataclass(frozen=True)
class CellSpec:
    """Candidate operations of one cell type, one tuple per edge, edges ordered node by node."""

    edges: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class CellSpace:
    """A validated cell search space. Equal specs compare (and hash) equal; ``source`` is not part of it."""

    name: str
    inputs: int
    """Inputs of a cell: 2 (outputs of the two previous cells, DARTS) or 1 (NAS-Bench-201)."""
    nodes: int
    """Intermediate nodes of a cell."""
    node_inputs: tuple[tuple[int, ...], ...]
    """For each intermediate node, the indices it reads: 0..inputs-1 are the cell inputs, then nodes."""
    multiplier: int
    """How many of the last nodes are concatenated into the cell output (1: the last node alone)."""
    normal: CellSpec
    reduce: CellSpec | None
    macro: Macro
    """The network around the cells (the same description compiled networks are built from)."""
    derive_rule: str = "top_k"
    derive_k: int = 2
    aux_conv1x1: bool = False
    """Auxiliary edge on stride-1 edges: identity (False) or an identity-initialised 1x1 conv (True)."""
    pool_batchnorm: bool = True
    """Append BatchNorm(affine=False) to pooling candidates in the supernet (DARTS does)."""
    description: str = field(default="", compare=False)
    source: str = field(default="<memory>", compare=False)

    search_defaults = ()
    row_noun = "edge"
    """Default search settings of the space: none for cell spaces (SearchConfig's are DARTS's)."""

    @property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """(node, input) for every edge, in the order of the cell specs."""
        return tuple((node, j) for node, inputs in enumerate(self.node_inputs) for j in inputs)

    @property
    def cell_types(self) -> tuple[str, ...]:
        return ("normal", "reduce") if self.reduce is not None else ("normal",)

    @property
    def kind(self) -> str:
        """The network family: darts or nb201."""
        return self.macro.kind

    @property
    def alpha_groups(self) -> tuple[str, ...]:
        """Names of the architecture-weight matrices (``alpha_normal``, ``alpha_reduce``: one row per edge)."""
        return self.cell_types

    def candidates(self, group: str) -> tuple[tuple[str, ...], ...]:
        """The candidate lists of the rows of ``alpha_<group>``."""
        return self.cell(group).edges

    @property
    def operations(self) -> list[str]:
        """Every candidate operation of the space, sorted."""
        return sorted({op for g in self.alpha_groups for ops in self.candidates(g) for op in ops})

    @property
    def summary(self) -> str:
        """``14 edges/cell, C=16 L=8``."""
        return f"{len(self.edges)} edges/cell, C={self.macro.channels} L={self.macro.layers}"

    def cell(self, cell_type: str) -> CellSpec:
        """The candidates of the ``cell_type`` cell, one of :attr:`cell_types`."""
        spec = self.normal if cell_type == "normal" else self.reduce
        if spec is None:
            raise ValueError(f"space {self.name!r} has no {cell_type} cell")
        return spec

    @property
    def concat(self) -> tuple[int, ...]:
        """Indices (in the cell's numbering) of the nodes concatenated into the output."""
        last = self.inputs + self.nodes
        return tuple(range(last - self.multiplier, last))

    @property
    def content_hash(self) -> str:
        """A short hash of everything that defines the space (not its description or file name)."""
        blob = json.dumps(self.to_dict(include_description=False), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_macro(self, **changes: Any) -> CellSpace:
        """The same space with macro fields overridden (e.g. ``channels=8, layers=5``), re-validated."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        sizes = {k: v for k, v in changes.items() if k in SIZE_SETTINGS}
        check_family_settings(self.kind, ("channels", "layers"), sizes, f"{self.name} is a cell space")
        data = self.to_dict()
        data["macro"].update(changes)
        return _Validator(f"{self.source} (with {', '.join(f'{k}={v}' for k, v in changes.items())})").space(data)

    def to_dict(self, include_description: bool = True) -> dict:
        """The spec as plain data (the YAML schema), round-tripping through :func:`cell_space_from_dict`."""
        def cell(spec: CellSpec) -> dict:
            if len(set(spec.edges)) == 1:
                return {"ops": list(spec.edges[0])}
            return {"edges": [list(ops) for ops in spec.edges]}

        data: dict[str, Any] = {"format": SPACE_FORMAT, "name": self.name, "kind": "cell"}
        if include_description:
            data["description"] = self.description
        data["cell"] = {"inputs": self.inputs, "nodes": self.nodes, "multiplier": self.multiplier,
                        "node_inputs": [list(i) for i in self.node_inputs], "normal": cell(self.normal)}
        if self.reduce is not None:
            data["cell"]["reduce"] = cell(self.reduce)
        data["derive"] = {"rule": self.derive_rule, "k": self.derive_k}
        data["auxiliary"] = {"conv1x1": self.aux_conv1x1}
        data["search"] = {"pool_batchnorm": self.pool_batchnorm}
        macro = self.macro.to_dict()
        macro["reductions"] = "thirds" if self.macro.reductions is None else macro["reductions"]
        if self.macro.stem == "cifar":  # the default stays out, so that spaces keep their content hash
            del macro["stem"]
        if self.macro.kind != "darts":
            del macro["stem_multiplier"], macro["reductions"]
        data["macro"] = macro
        return data


def cell_space_from_dict(data: Any, source: str = "<memory>") -> CellSpace:
    """Validates a parsed ``kind: cell`` spec into a :class:`CellSpace`."""
    return _Validator(source).space(data)


class _Validator(SpecChecks):
    def space(self, data: Any) -> CellSpace:
        top = self.mapping(data, "", {"format", "name", "cell", "macro"},
                           {"kind", "description", "derive", "auxiliary", "search"})
        self.header(top, "cell")
        name, description = top["name"], top.get("description", "")

        macro = self.macro(top["macro"])
        cell = self.mapping(top["cell"], "cell", {"inputs", "nodes", "normal"},
                            {"multiplier", "node_inputs", "reduce"})
        inputs = self.integer(cell["inputs"], "cell.inputs", 1, 2)
        nodes = self.integer(cell["nodes"], "cell.nodes", 1, MAX_CELL_NODES)
        multiplier = self.integer(cell.get("multiplier", nodes), "cell.multiplier", 1, nodes)
        node_inputs = self.node_inputs(cell.get("node_inputs"), inputs, nodes)
        n_edges = sum(len(i) for i in node_inputs)
        normal = self.cell_ops(cell["normal"], "cell.normal", n_edges)
        reduce = self.cell_ops(cell["reduce"], "cell.reduce", n_edges) if "reduce" in cell else None

        if macro.kind == "darts":
            if inputs != 2:
                self.fail("cell.inputs", f"darts networks feed each cell the two previous outputs: must be 2, "
                                         f"got {inputs}")
            if reduce is None and macro.reduction_positions():
                self.fail("cell.reduce", "missing: a darts network with reduction positions needs a reduction cell")
        elif reduce is not None:
            self.fail("cell.reduce", f"{macro.kind} networks have no reduction cells: remove this field")
        elif inputs != 1:
            self.fail("cell.inputs", f"{macro.kind} cells have one input: must be 1, got {inputs}")

        derive = self.mapping(top.get("derive", {}), "derive", set(), {"rule", "k"})
        rule = self.choice(derive.get("rule", "top_k"), "derive.rule", DERIVE_RULES)
        k = 0
        if rule == "top_k":
            fewest = min(len(i) for i in node_inputs)
            k = self.integer(derive.get("k", 2), "derive.k", 1, fewest)
            for cell_name, spec in (("normal", normal), ("reduce", reduce)):
                for e, ops in enumerate(spec.edges if spec else ()):
                    if all(OPS[op].zero for op in ops):
                        self.fail(f"cell.{cell_name}.edges[{e}]", "only 'none' is offered: top_k derivation "
                                                                  "needs another op on every edge")
        aux = self.mapping(top.get("auxiliary", {}), "auxiliary", set(), {"conv1x1"})
        search = self.mapping(top.get("search", {}), "search", set(), {"pool_batchnorm"})
        return CellSpace(
            name=name, inputs=inputs, nodes=nodes, node_inputs=node_inputs, multiplier=multiplier,
            normal=normal, reduce=reduce, macro=macro, derive_rule=rule, derive_k=k,
            aux_conv1x1=self.boolean(aux.get("conv1x1", False), "auxiliary.conv1x1"),
            pool_batchnorm=self.boolean(search.get("pool_batchnorm", macro.kind == "darts"),
                                        "search.pool_batchnorm"),
            description=description.strip(), source=self.source,
        )

    def node_inputs(self, value: Any, inputs: int, nodes: int) -> tuple[tuple[int, ...], ...]:
        if value is None:  # every node reads every earlier node
            return tuple(tuple(range(inputs + n)) for n in range(nodes))
        if not isinstance(value, list) or len(value) != nodes:
            self.fail("cell.node_inputs", f"expected a list with one entry per node ({nodes})")
        result = []
        for n, entry in enumerate(value):
            path = f"cell.node_inputs[{n}]"
            if not isinstance(entry, list) or not entry:
                self.fail(path, "expected a non-empty list of input indices")
            for i, j in enumerate(entry):
                self.integer(j, f"{path}[{i}]", 0, inputs + n - 1)
            if len(set(entry)) != len(entry):
                self.fail(path, f"an input is listed twice: {entry}")
            result.append(tuple(entry))
        return tuple(result)

    def cell_ops(self, value: Any, path: str, n_edges: int) -> CellSpec:
        spec = self.mapping(value, path, set(), {"ops", "edges"})
        if ("ops" in spec) == ("edges" in spec):
            self.fail(path, "give either 'ops' (one list for every edge) or 'edges' (one list per edge)")
        if "ops" in spec:
            return CellSpec((self.op_list(spec["ops"], f"{path}.ops"),) * n_edges)
        edges = spec["edges"]
        if not isinstance(edges, list) or len(edges) != n_edges:
            got = len(edges) if isinstance(edges, list) else type(edges).__name__
            self.fail(f"{path}.edges", f"expected {n_edges} edges (one per node input), got {got}")
        return CellSpec(tuple(self.op_list(ops, f"{path}.edges[{e}]") for e, ops in enumerate(edges)))

    def macro(self, value: Any) -> Macro:
        macro = self.mapping(value, "macro", {"kind", "channels", "layers"}, {"stem", "stem_multiplier", "reductions"})
        kind = self.choice(macro["kind"], "macro.kind", MACRO_KINDS)
        channels = self.integer(macro["channels"], "macro.channels", 1, MAX_CHANNELS)
        layers = self.integer(macro["layers"], "macro.layers", 1, MAX_LAYERS)
        if kind != "darts":
            for key in ("stem_multiplier", "reductions"):
                if key in macro:
                    self.fail(f"macro.{key}", f"not used by {kind} networks: remove this field")
            self.choice(macro.get("stem", "cifar"), "macro.stem", STEMS[kind])
            return Macro(kind, channels, layers)
        stem = self.integer(macro.get("stem_multiplier", 3), "macro.stem_multiplier", 1, MAX_STEM_MULTIPLIER)
        reductions = macro.get("reductions", "thirds")
        if reductions == "thirds":
            positions = None
        elif isinstance(reductions, list):
            for i, r in enumerate(reductions):
                if isinstance(r, int) and not isinstance(r, bool) and r >= layers:
                    self.fail(f"macro.reductions[{i}]", f"position {r} is past the last cell (layers: {layers}, "
                                                        f"allowed: 0..{layers - 1})")
                self.integer(r, f"macro.reductions[{i}]", 0, layers - 1)
            if sorted(set(reductions)) != reductions:
                self.fail("macro.reductions", f"positions must be increasing and distinct, got {reductions}")
            positions = tuple(reductions)
        else:
            self.fail("macro.reductions", f"expected 'thirds' or a list of cell positions, got {reductions!r}")
        stem_kind = self.choice(macro.get("stem", "cifar"), "macro.stem", STEMS[kind])
        try:
            return Macro(kind, channels, layers, stem_kind, stem, positions)
        except InvalidInputError as exc:
            self.fail("macro", exc.message, exc.hint)
