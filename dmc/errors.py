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


def check_known_settings(data: dict, known, source: str) -> None:
    """Refuses keys of ``data`` that are not in ``known`` (a config's field names)."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InvalidInputError(f"{source}: unknown setting {unknown[0]!r}", f"known settings: {', '.join(known)}")
