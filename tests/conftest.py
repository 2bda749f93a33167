from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

ONE_THREAD = {"search", "train", "runfolder", "exporters", "detection", "test_report.py", "test_report_chain.py"}
"""Test folders and files of tiny search and training runs."""


@pytest.fixture(scope="module", autouse=True)
def one_thread(request):
    """One intra-op thread for the tiny runs of ``ONE_THREAD``: on a busy machine OpenMP's spinning threads make
    them up to 10x slower (results compared within a test are computed alike either way)."""
    if ONE_THREAD.isdisjoint(Path(str(request.node.path)).parts):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli():
    """Invokes the `dmc` CLI in-process: ``cli("doctor")`` returns typer's Result."""
    from dmc.cli.main import app

    runner = CliRunner()

    def invoke(*args: str, **kwargs):
        return runner.invoke(app, list(args), **kwargs)

    return invoke


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory):
    """``folder:PATH`` with two classes (dark and bright noise), 16 training and 8 test images each: a search or
    training run on it takes about a second."""
    from PIL import Image

    root = tmp_path_factory.mktemp("toy-data")
    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("test", 8)):
        for c, level in enumerate((60, 190)):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(rng.normal(level, 50, (16, 16, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return f"folder:{root}"


@pytest.fixture(scope="session")
def chain_spec(tmp_path_factory):
    """``chain_spec(name, candidates, first_of_stage)``: the path of a tiny chain space spec (a stride-1 stem and a
    first block of 8 channels, two stages of two layers at 8 and 16 channels, a head of 32; the layer candidates
    given): a search of it on ``toy_data`` takes about a second."""
    folder = tmp_path_factory.mktemp("chain-specs")

    def write(name: str, candidates: list[str], first_of_stage: list[str]) -> str:
        path = folder / f"{name}.yaml"
        path.write_text(f"""\
format: dmc.space/1
name: {name}
kind: chain
macro:
  kind: chain
  stem: {{channels: 8, stride: 1}}
  first_block: {{channels: 8}}
  stages:
    - {{channels: 8, layers: 2, stride: 2}}
    - {{channels: 16, layers: 2, stride: 2}}
  head: {{channels: 32, dropout: 0.0}}
layers:
  candidates: [{", ".join(candidates)}]
  first_of_stage: [{", ".join(first_of_stage)}]
""")
        return str(path)

    return write
