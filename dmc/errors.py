"""Errors a user can fix. The CLI prints them as one line plus a hint, without a traceback."""

from __future__ import annotations

import re


class DmcError(Exception):
    """A problem with the user's input or environment, with a hint that says how to fix it.

    ``exit_code`` follows the shell convention used by the CLI: 2 for invalid input
    (specs, genotypes, arguments), 1 for everything else.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class InvalidInputError(DmcError):
    """A file or argument from the user is malformed or inconsistent."""

    exit_code = 2


class SettingError(InvalidInputError):
    """A setting (a config field or build argument) that does not apply, or a bad value of one.

    ``message`` and ``hint`` are templates that name settings in braces (``"{width} scales chain networks"``):
    the library's text names the fields (``width``), :meth:`cli_text` the command-line flags (``--width``)."""

    def __init__(self, message: str, hint: str | None = None):
        self.templates = (message, hint)
        super().__init__(_named(message, flags=False), None if hint is None else _named(hint, flags=False))

    def cli_text(self) -> str:
        """The error as the CLI prints it: settings named by their flags."""
        message, hint = (None if t is None else _named(t, flags=True) for t in self.templates)
        return f"{message} (hint: {hint})" if hint else str(message)


_SETTING = re.compile(r"\{([a-z][a-z0-9_]*)\}")
"""A setting named in a :class:`SettingError` template: ``{batch_size}``."""


def _named(template: str, flags: bool) -> str:
    """The template with each ``{setting}`` written as the field (``batch_size``) or the flag (``--batch-size``);
    other braces (in values the message quotes) are left as they are."""
    return _SETTING.sub(lambda m: f"--{m[1].replace('_', '-')}" if flags else m[1], template)


def check_known_settings(data: dict, known, source: str) -> None:
    """Refuses keys of ``data`` that are not in ``known`` (a config's field names)."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InvalidInputError(f"{source}: unknown setting {unknown[0]!r}", f"known settings: {', '.join(known)}")
