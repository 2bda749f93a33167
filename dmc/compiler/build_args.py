"""How a genotype was compiled: the macro network and the head, everything needed to rebuild it from a file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dmc.errors import InvalidInputError
from dmc.network import ChainMacro, Macro, macro_from_dict

STYLES = ("cifar", "imagenet", "nb201", "chain")
CELL_FIELDS = ("channels", "layers", "stem_multiplier", "reductions")
"""Build arguments that change a cell network's macro."""


@dataclass(frozen=True)
class BuildArgs:
    """Arguments of :func:`dmc.compiler.build_network` besides the genotype: the macro network (a cell network's
    :class:`Macro` or a chain network's :class:`ChainMacro`), the classes, the input channels, and whether
    DARTS's auxiliary head is attached.

    ``style`` names the family: ``cifar`` (DARTS's CIFAR network), ``imagenet`` (DARTS's two stride-2 stems),
    ``nb201`` (NAS-Bench-201's network; ``layers`` counts cells per stage) or ``chain``.
    """

    macro: Macro | ChainMacro
    num_classes: int = 10
    in_channels: int = 3
    auxiliary: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.macro, (Macro, ChainMacro)):
            raise InvalidInputError(f"build arguments need a macro network, got {type(self.macro).__name__}")
        for name in ("num_classes", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInputError(f"build argument {name} must be a positive integer, got {value!r}")
        if self.auxiliary and self.style in ("nb201", "chain"):
            raise InvalidInputError(f"{self.style} networks have no auxiliary head")

    @property
    def style(self) -> str:
        m = self.macro
        return m.kind if isinstance(m, ChainMacro) or m.kind == "nb201" else m.stem

    @property
    def input_size(self) -> int:
        """The image side the family is made for: 224 for ImageNet-style and chain networks, else 32."""
        return 224 if self.style in ("imagenet", "chain") else 32

    def describe(self) -> str:
        """``cifar network: 36 channels, 20 cells, 10 classes`` or ``chain network: width 1.0, 19 layers, ...``."""
        m = self.macro
        if isinstance(m, ChainMacro):
            shape = f"width {m.width:g}, {m.num_layers} layers"
        else:
            shape = f"{m.channels} channels, {m.layers} cells" + (" per stage" if m.kind == "nb201" else "")
        return f"{self.style} network: {shape}, {self.num_classes} classes"

    @classmethod
    def defaults_for(cls, style: str) -> BuildArgs:
        """The reference settings: DARTS CIFAR (36 channels, 20 cells), ImageNet (48, 14), NB201 (16, 5 per stage)."""
        if style not in STYLES or style == "chain":
            raise InvalidInputError(f"network style {style!r} has no default macro (allowed: cifar, imagenet, nb201)",
                                    "chain networks take their skeleton from the genotype")
        return {"cifar": cls(Macro("darts", 36, 20, "cifar"), 10),
                "imagenet": cls(Macro("darts", 48, 14, "imagenet"), 1000),
                "nb201": cls(Macro("nb201", 16, 5), 10)}[style]

    def replace(self, **changes: Any) -> BuildArgs:
        """Changes fields (None = keep): ``num_classes``, ``in_channels``, ``auxiliary``, a cell network's
        ``style``, ``channels``, ``layers``, ``stem_multiplier``, ``reductions``, a chain network's ``width``."""
        changes = {k: v for k, v in changes.items() if v is not None}
        macro = self.macro
        style = changes.pop("style", None)
        macro_changes = {k: changes.pop(k) for k in (*CELL_FIELDS, "width") if k in changes}
        if isinstance(macro, ChainMacro):
            if style not in (None, "chain"):
                raise InvalidInputError(f"a chain network cannot be built as a {style} network")
            cell_only = sorted(set(macro_changes) & set(CELL_FIELDS))
            if cell_only:
                raise InvalidInputError(f"--{cell_only[0].replace('_', '-')} is a cell-network setting; chain "
                                        "networks take their widths and depth from their skeleton",
                                        "scale a chain network's widths with --width")
            macro = macro.replace(**macro_changes)
        else:
            if style == "chain":
                raise InvalidInputError("a cell genotype cannot be built as a chain network")
            if "width" in macro_changes:
                raise InvalidInputError("--width scales chain networks", "cell networks change width with --channels")
            if style is not None:
                kind, stem = ("nb201", "cifar") if style == "nb201" else ("darts", style)
                if style not in STYLES:
                    raise InvalidInputError(f"network style {style!r} is unknown (allowed: {', '.join(STYLES)})")
                if kind != macro.kind:  # another family: its own reduction rule
                    macro_changes.setdefault("reductions", None)
                macro_changes = {"kind": kind, "stem": stem, **macro_changes}
            if "reductions" in macro_changes:
                macro_changes["reductions"] = tuple(macro_changes["reductions"])
            macro = dataclasses.replace(macro, **macro_changes) if macro_changes else macro
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
            macro_fields = {k: data.pop(k) for k in CELL_FIELDS if k in data}
            base = cls.defaults_for(style) if style in STYLES and style != "chain" else None
            if base is None:
                raise InvalidInputError(f"network style {style!r} is unknown (allowed: cifar, imagenet, nb201)")
            data["macro"] = base.replace(**macro_fields).macro
        elif "macro" in data:
            data["macro"] = macro_from_dict(data["macro"], "build arguments: macro")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidInputError(f"unknown build arguments: {', '.join(sorted(unknown))}")
        if "macro" not in data:
            raise InvalidInputError("build arguments: no macro network")
        return cls(**data)
