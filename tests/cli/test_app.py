"""The root command: help, version, and the one-line error policy shared by every command."""

import subprocess
import sys

import pytest
import torch
import typer
from typer.testing import CliRunner

from dmc import __version__
from dmc.cli.app import command
from dmc.errors import InvalidInputError


def test_help_lists_commands_with_descriptions(cli):
    result = cli("--help")
    assert result.exit_code == 0
    assert "doctor" in result.output
    assert "Check the installation" in result.output


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"dmc {__version__}"


def test_python_dash_m_dmc_is_the_command():
    """``python -m dmc``: what launchers that run modules (torchrun -m) call; errors keep the one-line policy."""
    run = subprocess.run([sys.executable, "-m", "dmc", "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == f"dmc {__version__}"
    bad = subprocess.run([sys.executable, "-m", "dmc", "search", "no_such_space"], capture_output=True, text=True)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "no_such_space" in bad.stderr


def _app_raising(exc: Exception) -> typer.Typer:
    app = typer.Typer()

    @command(app)
    def boom() -> None:
        raise exc

    @command(app)
    def other() -> None:  # a second command keeps typer from collapsing the group
        pass

    return app


def test_user_error_is_one_line_with_hint_and_exit_code(monkeypatch):
    monkeypatch.delenv("DMC_DEBUG", raising=False)
    app = _app_raising(InvalidInputError("spaces/x.yaml: nodes: must be >= 1", "fix the field"))
    result = CliRunner().invoke(app, ["boom"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: spaces/x.yaml: nodes: must be >= 1 (hint: fix the field)"
    assert "Traceback" not in result.output


def test_unexpected_error_is_one_line_and_points_to_debug(monkeypatch):
    monkeypatch.delenv("DMC_DEBUG", raising=False)
    result = CliRunner().invoke(_app_raising(ZeroDivisionError("division by zero")), ["boom"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "ZeroDivisionError: division by zero" in lines[0] and "DMC_DEBUG=1" in lines[0]


def test_debug_mode_lets_the_exception_through(monkeypatch):
    monkeypatch.setenv("DMC_DEBUG", "1")
    result = CliRunner().invoke(_app_raising(InvalidInputError("bad")), ["boom"])
    assert isinstance(result.exception, InvalidInputError)


@pytest.mark.parametrize("args,message", [
    (["spaces", "show"], "error: Missing argument 'space'. (hint: see 'dmc spaces show --help')"),
    (["spaces", "show", "tiny", "--bogus"], "error: No such option: --bogus (hint: see 'dmc spaces show --help')"),
    (["nosuch"], "error: No such command 'nosuch'. (hint: see 'dmc --help')"),
    (["--bogus"], "error: No such option: --bogus (hint: see 'dmc --help')"),
    (["search", "tiny", "--epochs", "abc"], "error: Invalid value for '--epochs'"),
])
def test_usage_errors_are_one_line_with_exit_2(cli, args, message):
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [result.stderr.strip()] and result.stderr.startswith(message)
    assert result.stdout == ""


def test_help_is_untouched(cli):
    for args in (["spaces", "show", "--help"], ["compile", "-h"]):
        result = cli(*args)
        assert result.exit_code == 0 and "Usage:" in result.stdout and "--help" in result.stdout
    alone = cli("spaces")  # a group alone shows its help
    assert "validate" in alone.output and "error:" not in alone.output


@pytest.mark.parametrize("exc,message", [
    (PermissionError(13, "Permission denied", "/data/x.yaml"),
     "error: /data/x.yaml: Permission denied (hint: check the path, its permissions and free space)"),
    (MemoryError(), "error: out of memory (hint: use a smaller network, batch or input size)"),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
     "error: out of memory (hint: use a smaller network, batch or input size)"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to "
                  "allocate 123456789012 bytes."),
     "error: out of memory (hint: use a smaller network, batch or input size)"),
])
def test_environment_errors_are_one_line_with_exit_1(monkeypatch, exc, message):
    monkeypatch.delenv("DMC_DEBUG", raising=False)
    result = CliRunner().invoke(_app_raising(exc), ["boom"])
    assert result.exit_code == 1 and result.stderr == message + "\n"
