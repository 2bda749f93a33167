"""The macro network around the cells, one description for search spaces, genotypes and compiled networks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dmc.errors import InvalidInputError
from dmc.limits import MAX_CHANNELS, MAX_LAYERS, MAX_STEM_MULTIPLIER

MACRO_KINDS = ("darts", "nb201")
STEMS = {"darts": ("cifar", "imagenet"), "nb201": ("cifar",)}
"""Stems per kind: ``cifar`` is one stride-1 3x3 conv; ``imagenet`` DARTS's two stride-2 stems (stride 8)."""


@dataclass(frozen=True)
class CellSlot:
    """Where a cell sits in the macro network: what a cell factory needs to build it."""

    index: int
    """Position in the network's ``blocks``."""
    cell_type: str
    """``normal`` or ``reduce``."""
    channels: int
    in_channels: tuple[int, ...]
    reduction: bool
    reduction_prev: bool


@dataclass(frozen=True)
class Macro:
    """Stem, width, depth and reduction positions of a cell network.

    ``darts``: a stem (``cifar``: 3x3 conv with ``stem_multiplier * channels`` channels; ``imagenet``: two
    stride-2 stems, overall stride 8), ``layers`` two-input cells, reduction cells (stride 2, channels
    doubled) at ``reductions`` (None: layers//3 and 2*layers//3), global pool, linear.
    ``nb201``: 3x3 conv stem with ``channels``, three stages of ``layers`` one-input cells at 1x, 2x, 4x
    channels joined by stride-2 residual blocks, then BN-ReLU, global pool, linear.
    """

    kind: str = "darts"
    channels: int = 16
    layers: int = 8
    stem: str = "cifar"
    stem_multiplier: int = 3
    reductions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in MACRO_KINDS:
            raise InvalidInputError(f"macro kind {self.kind!r} is unknown (allowed: {', '.join(MACRO_KINDS)})")
        if self.stem not in STEMS[self.kind]:
            raise InvalidInputError(f"a {self.kind} network has no {self.stem!r} stem "
                                    f"(allowed: {', '.join(STEMS[self.kind])})")
        for name, high in (("channels", MAX_CHANNELS), ("layers", MAX_LAYERS),
                           ("stem_multiplier", MAX_STEM_MULTIPLIER)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise InvalidInputError(f"{name} must be an integer in 1..{high}, got {value!r}")
        if self.reductions is not None:
            if self.kind != "darts":
                raise InvalidInputError(f"{self.kind} networks have no reduction cells to place")
            positions = list(self.reductions)
            if any(isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < self.layers for p in positions) \
                    or positions != sorted(set(positions)):  # integers first: set() and sorted() fail on others
                raise InvalidInputError(f"reduction positions {positions} do not fit {self.layers} cells",
                                        f"give increasing cell indices in 0..{self.layers - 1}")
        elif self.kind == "darts" and self.layers < 3:
            raise InvalidInputError(f"a darts network with reductions at L/3 and 2L/3 needs at least 3 cells, "
                                    f"got {self.layers}", "use more layers, or give the reduction positions")

    def reduction_positions(self) -> tuple[int, ...]:
        """Indices of the reduction cells (darts); none for nb201."""
        if self.kind != "darts":
            return ()
        if self.reductions is not None:
            return self.reductions
        return (self.layers // 3, 2 * self.layers // 3)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["reductions"] = None if self.reductions is None else list(self.reductions)
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "macro") -> Macro:
        if not isinstance(data, dict):
            raise InvalidInputError(f"{source}: expected a mapping of macro fields")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"{source}: unknown macro field {unknown[0]!r}",
                                    f"known: {', '.join(sorted(known))}")
        values = dict(data)
        if values.get("reductions") is not None:
            if not isinstance(values["reductions"], (list, tuple)):
                raise InvalidInputError(f"{source}: reductions must be a list of cell indices")
            values["reductions"] = tuple(values["reductions"])
        try:
            return cls(**values)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{source}: {exc.message}", exc.hint) from None
