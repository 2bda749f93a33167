"""Errors a user can fix. The CLI prints them as one line plus a hint, without a traceback."""

from __future__ import annotations


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


class _SettingNames(dict):
    def __init__(self, flags: bool):
        super().__init__()
        self.flags = flags

    def __missing__(self, setting: str) -> str:
        return f"--{setting.replace('_', '-')}" if self.flags else setting


def _named(template: str, flags: bool) -> str:
    return template.format_map(_SettingNames(flags))


def check_known_settings(data: dict, known, source: str) -> None:
    """Refuses keys of ``data`` that are not in ``known`` (a config's field names)."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InvalidInputError(f"{source}: unknown setting {unknown[0]!r}", f"known settings: {', '.join(known)}")
