"""How a genotype was compiled: everything needed to rebuild the same network from a file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dmc.errors import InvalidInputError
from dmc.network.macro import Macro

STYLES = ("cifar", "imagenet", "nb201")


@dataclass(frozen=True)
class BuildArgs:
    """Arguments of :func:`dmc.compiler.compile` besides the genotype.

    ``style``: ``cifar`` (DARTS's CIFAR network: 3x3 stem with ``stem_multiplier * channels`` channels),
    ``imagenet`` (DARTS's two stride-2 stems, overall stride 8 before the first cell) or ``nb201``
    (NAS-Bench-201's macro network; ``layers`` is then the number of cells per stage).
    """

    style: str = "cifar"
    num_classes: int = 10
    channels: int = 36
    layers: int = 20
    auxiliary: bool = False
    in_channels: int = 3
    stem_multiplier: int = 3
    reductions: tuple[int, ...] | None = None
    """Indices of the reduction cells (DARTS family); None: layers//3 and 2*layers//3."""

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise InvalidInputError(f"network style {self.style!r} is unknown (allowed: {', '.join(STYLES)})")
        for name in ("num_classes", "channels", "layers", "in_channels", "stem_multiplier"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInputError(f"build argument {name} must be a positive integer, got {value!r}")
        if self.reductions is not None:
            object.__setattr__(self, "reductions", tuple(self.reductions))
        if self.auxiliary and self.style == "nb201":
            raise InvalidInputError("nb201 networks have no auxiliary head")
        self.macro()  # validates channels, layers and reduction positions together

    def macro(self) -> Macro:
        """The macro network these arguments describe (``style`` names its kind and stem)."""
        kind, stem = ("nb201", "cifar") if self.style == "nb201" else ("darts", self.style)
        return Macro(kind, self.channels, self.layers, stem, self.stem_multiplier, self.reductions)

    @classmethod
    def defaults_for(cls, style: str) -> BuildArgs:
        """The reference settings: DARTS CIFAR (36 channels, 20 cells), ImageNet (48, 14), NB201 (16, 5 per stage)."""
        return {"cifar": cls("cifar", 10, 36, 20), "imagenet": cls("imagenet", 1000, 48, 14),
                "nb201": cls("nb201", 10, 16, 5)}[style]

    def replace(self, **changes: Any) -> BuildArgs:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["reductions"] = None if self.reductions is None else list(self.reductions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildArgs:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidInputError(f"unknown build arguments: {', '.join(sorted(unknown))}")
        return cls(**data)
