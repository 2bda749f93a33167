"""Chain genotypes: one operation per searchable layer of a chain skeleton (``kind: chain``).

JSON: ``{"format": "dmc.genotype", "version": 1, "kind": "chain", "space": {...}, "macro": {...},
"layers": ["mbconv_k3_e6", "skip", ...]}``. The skeleton travels with the genotype, so the compiler
builds exactly the network that was searched (or published).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmc.errors import InvalidInputError
from dmc.families.chain.layers import chain_layer_names, chain_layer_problem
from dmc.families.chain.macro import ChainMacro, LayerSlot
from dmc.families.genotype_file import (
    GENOTYPE_FORMAT,
    GENOTYPE_VERSION,
    GenotypeError,
    check_header,
    check_space_fields,
    space_fields,
)
from dmc.io import atomic_write_text
from dmc.ops import OPS


@dataclass(frozen=True)
class ChainGenotype:
    """The layer choices of a chain network; a 'skip' where the shape is kept removes that layer."""

    layers: tuple[str, ...]
    macro: ChainMacro
    space: str | None = None
    space_hash: str | None = None

    kind = "chain"
    groups = ("layers",)
    """The architecture-weight groups it was derived from (one row per layer)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        check_space_fields(self.space, self.space_hash)
        if len(self.layers) != self.macro.num_layers:
            raise GenotypeError(f"layers: {len(self.layers)} operations for a skeleton of {self.macro.num_layers} "
                                "layers", "give one operation per searchable layer")
        for i, (op, slot) in enumerate(zip(self.layers, self.slots())):
            problem = chain_layer_problem(op, slot)
            if problem is not None:
                raise GenotypeError(f"layers[{i}]: {problem}", f"chain layers: {chain_layer_names()}")

    @property
    def deterministic(self) -> bool:
        return True

    def skip_count(self, group: str = "layers") -> int:
        """How many layers are skips."""
        return sum(OPS[op].skip for op in self.layers)

    def slots(self) -> tuple[LayerSlot, ...]:
        return self.macro.layer_slots()

    def depth(self) -> int:
        """Layers left once skips that keep the shape are removed."""
        return sum(not (OPS[op].skip and slot.keeps_shape) for op, slot in zip(self.layers, self.slots()))

    def describe(self) -> str:
        """The stages on one line, ``; ``-separated: ``stage 0 (32): k7_e3 s2, k3_e3; stage 1 (40): ...``
        (mbconv_ dropped, skips shown)."""
        lines, slots = [], self.slots()
        for s, stage in enumerate(self.macro.stages):
            ops = [op.removeprefix("mbconv_") + (" s2" if slot.stride == 2 else "")
                   for op, slot in zip(self.layers, slots) if slot.stage == s]
            lines.append(f"stage {s} ({stage.channels}): {', '.join(ops)}")
        return "; ".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"format": GENOTYPE_FORMAT, "version": GENOTYPE_VERSION, "kind": "chain",
                "space": {"name": self.space, "hash": self.space_hash}, "macro": self.macro.to_dict(),
                "layers": list(self.layers)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "genotype") -> ChainGenotype:
        """Reads :meth:`to_dict`'s mapping."""
        check_header(data, source)
        unknown = sorted(set(data) - {"format", "version", "kind", "space", "macro", "layers"})
        if unknown:
            raise GenotypeError(f"{source}: unknown field {unknown[0]!r} in a chain genotype")
        if "macro" not in data or not isinstance(data.get("layers"), list):
            raise GenotypeError(f"{source}: a chain genotype needs 'macro' (the skeleton) and 'layers' (one "
                                "operation per layer)")
        space, space_hash = space_fields(data, source)
        try:
            return cls(tuple(data["layers"]), ChainMacro.from_dict(data["macro"], "macro"), space, space_hash)
        except InvalidInputError as exc:  # the skeleton's or the layers' problem, one line
            raise GenotypeError(f"{source}: {exc.message}", exc.hint) from None

    def save(self, path: str | Path) -> Path:
        """Writes the JSON genotype atomically."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
