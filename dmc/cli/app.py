"""The root `dmc` Typer app and its error policy: one line plus a hint, no traceback."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TypeVar

import typer

from dmc.errors import DmcError
from dmc.version import __version__

F = TypeVar("F", bound=Callable)


def debug_enabled() -> bool:
    """`DMC_DEBUG=1` shows full tracebacks instead of one-line errors."""
    return os.environ.get("DMC_DEBUG", "") not in ("", "0")


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def one_line_errors(func: F) -> F:
    """Turns exceptions escaping a command into one line on stderr and an exit code.

    A :class:`DmcError` exits with its own code (2 for bad input); anything unexpected exits 1 and
    says how to get the traceback. With `DMC_DEBUG=1` exceptions propagate untouched.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except DmcError as exc:
            if debug_enabled():
                raise
            raise _fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except Exception as exc:
            if debug_enabled():
                raise
            detail = (str(exc).strip().splitlines() or [""])[0]
            raise _fail(f"unexpected {type(exc).__name__}: {detail} "
                        "(hint: rerun with DMC_DEBUG=1 for the traceback and report it)", 1) from None

    return wrapper  # type: ignore[return-value]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dmc {__version__}")
        raise typer.Exit()


def _typer(**kwargs) -> typer.Typer:
    return typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                       context_settings={"help_option_names": ["-h", "--help"]}, **kwargs)


app = _typer(name="dmc", help="dmc: search (DARTS-), derive, compile, export and deploy neural architectures.")


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print dmc's version and exit."),
) -> None:
    """dmc: search (DARTS-), derive, compile, export and deploy neural architectures."""


def command(group: typer.Typer = app, **kwargs) -> Callable[[F], F]:
    """Registers a function as a command of ``group`` with dmc's one-line error policy."""

    def register(func: F) -> F:
        group.command(**kwargs)(one_line_errors(func))
        return func

    return register


def sub_app(name: str, help: str) -> typer.Typer:
    """A command group under the root, e.g. `dmc spaces ...`."""
    sub = _typer(name=name, help=help)
    app.add_typer(sub)
    return sub
