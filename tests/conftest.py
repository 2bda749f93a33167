import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

ONE_THREAD = {"search", "train", "runfolder", "exporters", "detection", "viz", "test_report.py",
              "test_report_chain.py", "test_mbconv.py", "test_chain_networks.py", "test_chain_supernet.py"}
"""Test folders and files of tiny search, training, export and detector runs."""


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


@pytest.fixture
def dmc_process():
    """Runs ``python -m dmc ARGS`` in a child process, for inputs that could end the interpreter itself (a crash
    there fails the test instead of the whole test session); returns the CompletedProcess (text)."""

    def run(*args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "DMC_DEBUG"}
        return subprocess.run([sys.executable, "-m", "dmc", *args], capture_output=True, text=True, env=env,
                              timeout=300)

    return run


class _ObjectArrayState:
    """Pickles as numpy pickles an array, with the state of 1000 objects taken from a one-element list: numpy's own
    unpickling reads past the list (a segmentation fault)."""

    def __reduce__(self):
        reconstruct = np.zeros(0).__reduce__()[0]  # numpy.(_)core.multiarray._reconstruct
        return reconstruct, (np.ndarray, (0,), b"b"), (1, (1000,), np.dtype("O"), False, [1])


@pytest.fixture
def hostile_array():
    """An object that pickles (pickle, torch.save) as a numpy array whose state would crash numpy's unpickling."""
    return _ObjectArrayState()


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


@pytest.fixture(scope="session")
def load_torchvision_weights():
    """``load(network, reference)``: copies a torchvision MobileNetV2's tensors into a compiled chain network of the
    same shape, in forward order (stem, first block, layers, head, classifier), checking shapes and tensor kinds."""
    from dmc.models import load_by_position

    def load(network: nn.Module, reference: nn.Module) -> nn.Module:
        return load_by_position(network, reference.state_dict(), "torchvision's mobilenet_v2")

    return load


@pytest.fixture(scope="session")
def calibrate_bn():
    """``calibrate(model, size, seed=0)``: random BatchNorm scales and shifts, and running statistics measured on
    random ``size`` x ``size`` images (as training leaves them), so that activations stay O(1) and depend on the
    input all the way to the logits; returns the model in eval mode."""

    def calibrate(model: nn.Module, size: int, seed: int = 0) -> nn.Module:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.reset_running_stats()
                    m.momentum = None  # a plain average over the calibration batches
                    m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=generator) * 0.2)
            model.train()
            for _ in range(2):
                model(torch.randn(8, 3, size, size, generator=generator))
        return model.eval()

    return calibrate
