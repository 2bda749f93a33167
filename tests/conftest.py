import pytest
from typer.testing import CliRunner


@pytest.fixture
def cli():
    """Invokes the `dmc` CLI in-process: ``cli("doctor")`` returns typer's Result."""
    from dmc.cli.main import app

    runner = CliRunner()

    def invoke(*args: str, **kwargs):
        return runner.invoke(app, list(args), **kwargs)

    return invoke
