"""How a genotype was compiled: the macro network and the head, everything needed to rebuild it from a file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dmc.errors import InvalidInputError, SettingError
from dmc.families import Family, families, family_of, macro_from_dict
from dmc.families.cell.family import CELL_SETTINGS, DARTS, NB201
from dmc.families.settings import SIZE_SETTINGS

STYLES = tuple(style for family in families().values() for style in family.styles)
"""The network styles of the bundled families: ``cifar``, ``imagenet`` (DARTS), ``nb201``, ``chain``."""


@dataclass(frozen=True)
class BuildArgs:
    """Arguments of :func:`dmc.compiler.build_network` besides the genotype: the macro network (its family's:
    a cell network's :class:`~dmc.families.cell.Macro`, a chain network's :class:`~dmc.families.chain.ChainMacro`),
    the classes, the input channels, and whether DARTS's auxiliary head is attached.

    ``style`` names the network: ``cifar`` (DARTS's CIFAR network), ``imagenet`` (DARTS's two stride-2 stems),
    ``nb201`` (NAS-Bench-201's network; ``layers`` counts cells per stage) or ``chain``.
    """

    macro: Any
    num_classes: int = 10
    in_channels: int = 3
    auxiliary: bool = False

    def __post_init__(self) -> None:
        if getattr(self.macro, "kind", None) not in families():
            raise InvalidInputError(f"build arguments need a macro network, got {type(self.macro).__name__}")
        for name in ("num_classes", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInputError(f"build argument {name} must be a positive integer, got {value!r}")
        if self.auxiliary and not self.family.has_auxiliary_head:
            raise InvalidInputError(f"{self.style} networks have no auxiliary head")

    @property
    def family(self) -> Family:
        return family_of(self.macro)

    @property
    def style(self) -> str:
        return self.family.style_of(self.macro)

    @property
    def input_size(self) -> int:
        """The image side the family is made for: 224 for ImageNet-style and chain networks, else 32."""
        return self.family.input_size(self.macro)

    def describe(self) -> str:
        """``cifar network: 36 channels, 20 cells, 10 classes`` or ``chain network: width 1.0, 19 layers, ...``."""
        return f"{self.style} network: {self.family.describe_macro(self.macro)}, {self.num_classes} classes"

    @classmethod
    def defaults_for(cls, style: str) -> BuildArgs:
        """The reference settings of ``style``: DARTS CIFAR (36 channels, 20 cells), ImageNet (48, 14), NB201 (16,
        5 per stage); chain networks take their skeleton from the genotype."""
        macro, num_classes = family_of_style(style).default_macro(style)
        return cls(macro, num_classes)

    def replace(self, **changes: Any) -> BuildArgs:
        """Changes fields (None = keep): ``num_classes``, ``in_channels``, ``auxiliary``, ``style`` (within the
        family: DARTS's ``cifar``/``imagenet``, or another cell family), and the family's own settings (a cell
        network's ``channels``, ``layers``, ``stem_multiplier``, ``reductions``, a chain network's ``width``)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        family = self.family
        style = changes.pop("style", None)
        sizes = {k: changes.pop(k) for k in (*SIZE_SETTINGS, "stem_multiplier", "reductions") if k in changes}
        family.check_settings(sizes)
        if style is not None and not builds_style(family, style):
            raise SettingError(f"a {family.name} network cannot be built as a {style} network",
                               f"its {{style}}: {', '.join(family.styles)}")
        macro = family.replace_macro(self.macro, style, sizes)
        return dataclasses.replace(self, macro=macro, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"macro": self.macro.to_dict(), "num_classes": self.num_classes, "in_channels": self.in_channels,
                "auxiliary": self.auxiliary}

    @classmethod
    def from_dict(cls, data: Any) -> BuildArgs:
        """Reads :meth:`to_dict`'s mapping, or the flat form of files written before the macro was one field."""
        if not isinstance(data, dict):
            raise InvalidInputError("build arguments: expected a mapping")
        data = dict(data)
        if "style" in data:  # the flat form: style, channels, layers, stem_multiplier, reductions
            style = data.pop("style")
            macro_fields = {k: data.pop(k) for k in CELL_SETTINGS if k in data}
            if style not in DARTS.styles + NB201.styles:
                raise InvalidInputError(f"network style {style!r} is unknown (allowed: cifar, imagenet, nb201)")
            data["macro"] = cls.defaults_for(style).replace(**macro_fields).macro
        elif "macro" in data:
            data["macro"] = macro_from_dict(data["macro"], "build arguments: macro")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidInputError(f"unknown build arguments: {', '.join(sorted(unknown))}")
        if "macro" not in data:
            raise InvalidInputError("build arguments: no macro network")
        return cls(**data)


def family_of_style(style: str) -> Family:
    """The family that builds ``style`` networks."""
    for family in families().values():
        if style in family.styles:
            return family
    raise SettingError(f"network style {style!r} is unknown (allowed: {', '.join(STYLES)})")


def builds_style(family: Family, style: str) -> bool:
    """Whether ``family``'s genotypes can be built as ``style`` networks: its own styles, or those of a family with
    the same spec (the two cell families share genotypes: a network whose wiring does not fit refuses them)."""
    return style in family.styles or family_of_style(style).spec_kind == family.spec_kind
