"""The root `dmc` Typer app and its error policy: one line plus a hint, no traceback."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import typer
from typer import _click  # typer vendors click: its usage errors are click's exceptions
from typer.core import TyperGroup

from dmc.api import __version__, is_out_of_memory
from dmc.errors import DmcError

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
            if getattr(exc, "quiet", False):  # another process of the run has printed the line
                raise typer.Exit(exc.exit_code) from None
            raise _fail(exc.cli_text(), exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except OSError as exc:  # the file system's problem, not a bug: say which file and why
            if debug_enabled():
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            raise _fail(f"{where}{exc.strerror or exc} (hint: check the path, its permissions and free space)",
                        1) from None
        except Exception as exc:
            if debug_enabled():
                raise
            if is_out_of_memory(exc):  # outside a run's loop, which names its own settings (dmc.out_of_memory)
                raise _fail("out of memory (hint: use a smaller network, batch or input size)", 1) from None
            detail = (str(exc).strip().splitlines() or [""])[0]
            raise _fail(f"unexpected {type(exc).__name__}: {detail} "
                        "(hint: rerun with DMC_DEBUG=1 for the traceback and report it)", 1) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _usage_errors_in_one_line() -> Iterator[None]:
    try:
        yield
    except _click.exceptions.NoArgsIsHelpError:
        raise  # `dmc` or `dmc spaces` alone: the help is the answer
    except _click.exceptions.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (hint: see '{ctx.command_path} --help')" if ctx is not None else ""
        raise _fail(" ".join(exc.format_message().split()) + hint, exc.exit_code) from None


class OneLineUsageErrors(TyperGroup):
    """The root group: usage errors (unknown command or option, missing argument, a value of the wrong
    type), its own and its commands', are one `error:` line with exit 2 like every other invalid input,
    not click's usage box."""

    def make_context(self, *args, **kwargs):
        with _usage_errors_in_one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _usage_errors_in_one_line():
            return super().invoke(ctx)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dmc {__version__}")
        raise typer.Exit()


def _typer(**kwargs) -> typer.Typer:
    # rich_markup_mode=None: help texts are plain text, so that "[default]" brackets are printed, not eaten as markup
    return typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                       rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]}, **kwargs)


app = _typer(name="dmc", cls=OneLineUsageErrors,
             help="dmc: search (DARTS-), derive, compile, export and deploy neural architectures.")


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
