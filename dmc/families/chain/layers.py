"""Which operations a chain layer can be: the one check of the chain space's spec and of chain genotypes."""

from __future__ import annotations

from dmc.families.chain.macro import LayerSlot
from dmc.ops import OPS


def chain_layer_names() -> str:
    """The chain layer operations, for hints (the squeeze-excitation variants summed up)."""
    return ", ".join(s.name for s in OPS if s.chain and "_se" not in s.name) + ", with _se variants"


def chain_layer_problem(op: object, slot: LayerSlot) -> str | None:
    """Why ``op`` cannot be the chain layer at ``slot`` (no chain layer operation; group convs on widths they do not
    divide), or None."""
    if not isinstance(op, str) or op not in OPS or not OPS[op].chain:  # a list or mapping read from a file is none
        return f"{op!r} is not a chain layer operation"
    groups = OPS[op].groups
    if slot.c_in % groups or slot.c_out % groups:
        return f"{op!r} needs widths divisible by {groups}, got {slot.c_in} -> {slot.c_out}"
    return None
