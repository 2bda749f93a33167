"""Settings dataclasses (search, training) built from user mappings: every value checked against its field's
type, so that ``epochs: "abc"``, ``lr: [1]``, ``seed: 1.5`` or ``lr: .nan`` is one line naming the key."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import TYPE_CHECKING, Any, TypeVar

from dmc.errors import InvalidInputError, check_known_settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def settings_from_dict(cls: type[T], data: Any, source: str) -> T:
    """``cls(**data)`` once every key is a field of ``cls`` and every value fits its type (integers are
    accepted for floats, lists for tuples); ``source`` names the mapping in errors. A key of ``cls``'s
    ``renamed_settings`` (old name -> field) is read as its field, so that files of older versions still load."""
    if not isinstance(data, dict):
        raise InvalidInputError(f"{source}: expected a mapping of settings, got {_describe(data)}",
                                "write one `name: value` per line")
    for key in data:
        if not isinstance(key, str):
            raise InvalidInputError(f"{source}: setting names must be text, got {_describe(key)}",
                                    "write one `name: value` per line")
    renamed = getattr(cls, "renamed_settings", {})
    data = {renamed.get(key, key) if renamed.get(key) not in data else key: value for key, value in data.items()}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    check_known_settings(data, list(fields), source)
    hints = typing.get_type_hints(cls)
    return cls(**{key: _checked(value, hints[key], fields[key], source) for key, value in data.items()})


def check_settings(settings: Any, source: str) -> None:
    """Checks the field values of a settings dataclass built directly (e.g. from Python) against their types."""
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        _checked(getattr(settings, f.name), hints[f.name], f, source)


def _checked(value: Any, hint: Any, field: dataclasses.Field, source: str) -> Any:
    converted = _convert(value, hint)
    if converted is _MISMATCH:
        raise InvalidInputError(f"{source}: {field.name}: expected {_expected(hint)}, got {_describe(value)}",
                                f"e.g. {field.name}: {_example(field)}")
    return converted


def _example(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING and field.default is not None:
        return json.dumps(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return json.dumps(field.default_factory())
    return "16"  # the optional integers (channels, layers, beta epochs)


_MISMATCH = object()


def _convert(value: Any, hint: Any) -> Any:
    """``value`` in the form ``hint`` asks for, or ``_MISMATCH``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None if type(None) in args else _MISMATCH
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner)
    if hint is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISMATCH
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else _MISMATCH
    if hint is str:
        return value if isinstance(value, str) else _MISMATCH
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # a list of any length
        if not isinstance(value, (list, tuple)):
            return _MISMATCH
        items = [_convert(v, args[0]) for v in value]
        return _MISMATCH if any(i is _MISMATCH for i in items) else tuple(items)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            return _MISMATCH
        items = [_convert(v, a) for v, a in zip(value, args)]
        return _MISMATCH if any(i is _MISMATCH for i in items) else tuple(items)
    if origin is dict:
        return value if isinstance(value, dict) and _plain_json(value) else _MISMATCH
    raise TypeError(f"unsupported settings type {hint!r}")  # a programming error, not the user's


def _plain_json(value: Any) -> bool:
    # free-form settings are saved in config.json: strict JSON only (no NaN, dates or tags)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _expected(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return f"{_expected(inner)} or null"
    if origin is tuple and args[-1] is Ellipsis:
        return f"a list of {_NAMES[args[0]][1]}"
    if origin is tuple:  # the settings' tuples hold one type
        return f"a list of {len(args)} {_NAMES[args[0]][1]}"
    if origin is dict:
        return "a mapping of plain data (finite numbers, text, lists, mappings)"
    return _NAMES[hint][0]


_NAMES = {bool: ("true or false", "booleans"), int: ("an integer", "integers"),
          float: ("a finite number", "finite numbers"), str: ("text", "texts")}


def _describe(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):  # never print a (possibly huge or deeply nested) container
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
