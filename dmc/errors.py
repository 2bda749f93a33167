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

    def cli_text(self) -> str:
        """The error as the CLI prints it; an error that names settings (:class:`NamedSettingsError`) names their
        flags there."""
        return str(self)


class NamedSettingsError(DmcError):
    """An error whose message and hint name settings (config fields, build arguments, parameters of the API).

    ``message`` and ``hint`` are templates that name settings in braces (``"lower the learning rate ({lr})"``):
    the library's text names the fields (``lr``), :meth:`cli_text` the command-line flags (``--lr``).
    ``{setting=False}`` is a switch turned off (``auxiliary=False``; on the command line ``--no-auxiliary``).
    Raised as such for a failure (exit 1) that other settings avoid; :class:`SettingError` is bad input."""

    def __init__(self, message: str, hint: str | None = None):
        self.templates = (message, hint)
        super().__init__(_named(message, flags=False), None if hint is None else _named(hint, flags=False))

    def cli_text(self) -> str:
        """The error as the CLI prints it: settings named by their flags."""
        message, hint = (None if t is None else _named(t, flags=True) for t in self.templates)
        return f"{message} (hint: {hint})" if hint else str(message)


class InvalidInputError(DmcError):
    """A file or argument from the user is malformed or inconsistent."""

    exit_code = 2


class SettingError(NamedSettingsError, InvalidInputError):
    """A setting (a config field or build argument) that does not apply, or a bad value of one: bad input (exit 2)
    whose message and hint name settings as :class:`NamedSettingsError`'s do (``"{width} scales chain networks"``)."""


_SETTING = re.compile(r"\{([a-z][a-z0-9_]*)(=False)?\}")
"""A setting named in a :class:`NamedSettingsError` template: ``{batch_size}``, or a switch turned off:
``{auxiliary=False}``."""

_FLAGS = {"beta0s": "beta0"}
"""Settings whose command-line flag is named otherwise (the ablation's ``--beta0`` list)."""


def _named(template: str, flags: bool) -> str:
    """The template with each ``{setting}`` written as the field (``batch_size``) or the flag (``--batch-size``);
    other braces (in values the message quotes) are left as they are."""
    def name(match: re.Match) -> str:
        setting, off = match[1], match[2] is not None
        if not flags:
            return f"{setting}=False" if off else setting
        flag = _FLAGS.get(setting, setting).replace("_", "-")
        return f"--no-{flag}" if off else f"--{flag}"

    return _SETTING.sub(name, template)


def check_known_settings(data: dict, known, source: str) -> None:
    """Refuses keys of ``data`` that are not in ``known`` (a config's field names)."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InvalidInputError(f"{source}: unknown setting {unknown[0]!r}", f"known settings: {', '.join(known)}")
