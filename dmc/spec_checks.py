"""Checks shared by the search-space spec readers: every problem is one line naming the file and the field."""

from __future__ import annotations

import re
from typing import Any, NoReturn

from dmc.errors import InvalidInputError
from dmc.ops import OPS

SPACE_FORMAT = "dmc.space/1"
SPACE_KINDS = ("cell", "chain")


class SpecError(InvalidInputError):
    """A search-space spec is malformed; the message names the file and the field."""


class SpecChecks:
    """Field checks that raise :class:`SpecError` naming ``source`` and the field path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, problem: str, hint: str | None = None) -> NoReturn:
        raise SpecError(f"{self.source}: {path}: {problem}" if path else f"{self.source}: {problem}", hint)

    def mapping(self, value: Any, path: str, required: set[str], optional: set[str]) -> dict:
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if key not in required | optional:
                self.fail(f"{path}.{key}" if path else str(key), "unknown field",
                          f"allowed fields: {', '.join(sorted(required | optional))}")
        for key in sorted(required - set(value)):
            self.fail(f"{path}.{key}" if path else key, "missing required field")
        return value

    def integer(self, value: Any, path: str, low: int, high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected an integer, got {value!r}")
        if value < low or (high is not None and value > high):
            allowed = f"{low}..{high}" if high is not None else f">= {low}"
            self.fail(path, f"{value} is out of range (allowed: {allowed})")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false, got {value!r}")
        return value

    def choice(self, value: Any, path: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self.fail(path, f"{value!r} is not allowed (allowed: {', '.join(allowed)})")
        return value

    def op_list(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.fail(path, "expected a non-empty list of operation names")
        for i, op in enumerate(value):
            if not isinstance(op, str):
                self.fail(f"{path}[{i}]", f"expected an operation name, got {type(op).__name__} {op!r}",
                          f"known: {', '.join(OPS.names())}")
            if op not in OPS:
                self.fail(f"{path}[{i}]", f"unknown op {op!r} (known: {', '.join(OPS.names())})")
        if len(set(value)) != len(value):
            self.fail(path, f"an op is listed twice: {value}")
        return tuple(value)

    def header(self, top: dict, kind: str) -> None:
        """format, name, kind and description of a spec's top level."""
        if top["format"] != SPACE_FORMAT:
            self.fail("format", f"{top['format']!r} is not supported (allowed: {SPACE_FORMAT})")
        name = top["name"]
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            self.fail("name", f"{name!r} is not a valid name (letters, digits, '_', '-', '.')")
        self.choice(top.get("kind", "cell"), "kind", (kind,))
        if not isinstance(top.get("description", ""), str):
            self.fail("description", "expected text")
