"""The skeleton of a chain network (MobileNetV2-like): stem, fixed first block, stages of layers, head."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dmc.errors import InvalidInputError, SettingError
from dmc.limits import MAX_CHANNELS, MAX_LAYERS

CHAIN_ACTIVATIONS = ("relu", "relu6", "swish", "hardswish")
MAX_HEAD_CHANNELS = 8192
MAX_WIDTH = 8.0


def make_divisible(value: float, divisor: int = 8) -> int:
    """Rounds a width to a multiple of ``divisor``, never more than 10% down (torchvision's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class Stage:
    """``layers`` layers with ``channels`` output channels; the first one has ``stride``."""

    channels: int
    layers: int
    stride: int = 1


@dataclass(frozen=True)
class LayerSlot:
    """Where a searchable layer sits: its index, widths (after the width multiplier), stride and stage."""

    index: int
    c_in: int
    c_out: int
    stride: int
    stage: int

    @property
    def keeps_shape(self) -> bool:
        return self.stride == 1 and self.c_in == self.c_out


@dataclass(frozen=True)
class ChainMacro:
    """A chain network: a 3x3 stem (conv, BN, act; ``stem_stride``), an optional fixed first block (depthwise
    3x3 and 1x1 projection to ``first_block`` channels), searchable layers in ``stages``, a head (1x1 conv to
    ``head_channels``, BN, act; none if None), global pool, dropout, linear.

    ``width`` multiplies every width (rounded to multiples of 8 as torchvision does; the head only grows),
    so the same skeleton is searchable at a fraction of its cost.
    """

    stages: tuple[Stage, ...]
    stem_channels: int = 32
    stem_stride: int = 2
    first_block: int | None = 16
    head_channels: int | None = 1280
    dropout: float = 0.2
    activation: str = "relu6"
    width: float = 1.0
    fixed_activation: str | None = None
    """Activation of the stem, first block and head when it differs from the layers' (NoisyDARTS-A: ReLU
    there, swish in the layers); None: ``activation``."""

    kind = "chain"

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise InvalidInputError("a chain network needs at least one stage")
        for i, stage in enumerate(self.stages):
            _integer(stage.channels, f"stages[{i}].channels", 1, MAX_CHANNELS)
            _integer(stage.layers, f"stages[{i}].layers", 1, MAX_LAYERS)
            _stride(stage.stride, f"stages[{i}].stride")
        if sum(s.layers for s in self.stages) > MAX_LAYERS:
            raise InvalidInputError(f"a chain network has at most {MAX_LAYERS} layers")
        _integer(self.stem_channels, "stem.channels", 1, MAX_CHANNELS)
        _stride(self.stem_stride, "stem.stride")
        if self.first_block is not None:
            _integer(self.first_block, "first_block.channels", 1, MAX_CHANNELS)
        if self.head_channels is not None:
            _integer(self.head_channels, "head.channels", 1, MAX_HEAD_CHANNELS)
        _number(self.dropout, "head.dropout", 0.0, 1.0, high_open=True)
        _number(self.width, "width", 0.0, MAX_WIDTH, low_open=True)
        for name in ("activation", "fixed_activation"):
            value = getattr(self, name)
            if value not in CHAIN_ACTIVATIONS and (name == "activation" or value is not None):
                raise InvalidInputError(f"{name} {value!r} is unknown (allowed: {', '.join(CHAIN_ACTIVATIONS)})")

    # ------------------------------------------------------------------------------------------ layout
    def scaled(self, channels: int) -> int:
        return channels if self.width == 1.0 else make_divisible(channels * self.width)

    @property
    def outer_activation(self) -> str:
        """The activation of the stem, first block and head."""
        return self.fixed_activation or self.activation

    @property
    def stem_width(self) -> int:
        return self.scaled(self.stem_channels)

    @property
    def first_block_width(self) -> int | None:
        return None if self.first_block is None else self.scaled(self.first_block)

    @property
    def head_width(self) -> int | None:
        if self.head_channels is None:
            return None
        return self.head_channels if self.width <= 1.0 else make_divisible(self.head_channels * self.width)

    @property
    def num_layers(self) -> int:
        return sum(stage.layers for stage in self.stages)

    def layer_slots(self) -> tuple[LayerSlot, ...]:
        """Every searchable layer in order, with its widths and stride."""
        slots: list[LayerSlot] = []
        c_in = self.first_block_width or self.stem_width
        for s, stage in enumerate(self.stages):
            c_out = self.scaled(stage.channels)
            for i in range(stage.layers):
                slots.append(LayerSlot(len(slots), c_in, c_out, stage.stride if i == 0 else 1, s))
                c_in = c_out
        return tuple(slots)

    def replace(self, **changes: Any) -> ChainMacro:
        """The same skeleton with ``width``, ``activation`` or ``dropout`` changed (None = keep), re-validated."""
        changes = {k: v for k, v in changes.items() if v is not None}
        for key in changes:
            if key not in ("width", "activation", "dropout"):
                raise SettingError(f"{{{key}}} is not a setting of chain networks",
                                   "chain networks change their width with {width}")
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------------------------------ data
    def to_dict(self) -> dict[str, Any]:
        """The ``macro`` mapping of a chain space spec."""
        data: dict[str, Any] = {"kind": "chain", "activation": self.activation}
        if self.fixed_activation is not None:
            data["fixed_activation"] = self.fixed_activation
        data["stem"] = {"channels": self.stem_channels, "stride": self.stem_stride}
        if self.first_block is not None:
            data["first_block"] = {"channels": self.first_block}
        data["stages"] = [{"channels": s.channels, "layers": s.layers, "stride": s.stride} for s in self.stages]
        data["head"] = {"channels": self.head_channels, "dropout": self.dropout}
        data["width"] = self.width
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "macro") -> ChainMacro:
        """Reads :meth:`to_dict`'s mapping; every problem is one line naming the field."""
        try:
            fields = _fields(data, {"kind", "stages"},
                             {"activation", "fixed_activation", "stem", "first_block", "head", "width"}, "")
            if fields["kind"] != "chain":
                raise InvalidInputError(f"kind: {fields['kind']!r} is not a chain network")
            stem = _fields(fields.get("stem", {}), set(), {"channels", "stride"}, "stem.")
            first = fields.get("first_block")
            first = None if first is None else _fields(first, {"channels"}, set(), "first_block.")
            head = _fields(fields.get("head", {}), set(), {"channels", "dropout"}, "head.")
            stages = fields["stages"]
            if not isinstance(stages, list):
                raise InvalidInputError("stages: expected a list of {channels, layers, stride}")
            return cls(
                stages=tuple(Stage(**_fields(s, {"channels", "layers"}, {"stride"}, f"stages[{i}]."))
                             for i, s in enumerate(stages)),
                stem_channels=stem.get("channels", 32), stem_stride=stem.get("stride", 2),
                first_block=None if first is None else first["channels"],
                head_channels=head.get("channels", 1280), dropout=head.get("dropout", 0.2),
                activation=fields.get("activation", "relu6"), width=fields.get("width", 1.0),
                fixed_activation=fields.get("fixed_activation"))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{source}: {exc.message}", exc.hint) from None


def _fields(value: Any, required: set[str], optional: set[str], path: str) -> dict[str, Any]:
    if not isinstance(value, dict):  # the top level is named by from_dict's caller
        where = f"{path.rstrip('.')}: " if path else ""
        raise InvalidInputError(f"{where}expected a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - required - optional)
    if unknown:
        raise InvalidInputError(f"{path}{unknown[0]}: unknown field",
                                f"allowed fields: {', '.join(sorted(required | optional))}")
    missing = sorted(required - set(value))
    if missing:
        raise InvalidInputError(f"{path}{missing[0]}: missing required field")
    return value


def _stride(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 2):  # 2.0 is no conv stride
        raise InvalidInputError(f"{name} must be 1 or 2, got {value!r}")


def _integer(value: Any, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"{name} must be an integer in {low}..{high}, got {value!r}")


def _number(value: Any, name: str, low: float, high: float, low_open: bool = False, high_open: bool = False) -> None:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and value == value
          and (low < value if low_open else low <= value) and (value < high if high_open else value <= high))
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise InvalidInputError(f"{name} must be a number in {interval}, got {value!r}")
