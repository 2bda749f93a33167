"""A dataset or device that cannot be used is refused before a run writes anything: no half-made run folder (a
search's space.yaml, a training run's init.pt) is left for the next attempt to trip over."""

import shutil

import pytest
import torch

from dmc.compiler import build_network, save_network
from dmc.genotype import published_genotypes
from dmc.kernels import native
from dmc.kernels.native import KernelBuildError


@pytest.mark.parametrize("command", ["search", "train"])
@pytest.mark.parametrize("flags, problem", [
    (["--dataset", "folder:nope"], "nope: no such folder"),
    (["--device", "cuda"], "device 'cuda' requested but no GPU is visible (hint: use --device cpu or auto)"),
])
def test_an_unusable_dataset_or_device_leaves_no_run_folder(cli, tmp_path, monkeypatch, toy_data, command, flags,
                                                            problem):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    if command == "search":
        args = ["search", "tiny", "--kernels", "reference"]
    else:  # a network file: a training run keeps its starting weights as init.pt
        save_network(build_network(published_genotypes()["DARTS_V2"], channels=2, layers=3, num_classes=2), "net.pt")
        args = ["train", "net.pt"]
    dataset = [] if "--dataset" in flags else ["--dataset", toy_data]
    result = cli(*args, *dataset, *flags, "--out", "run")
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and problem in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["search", "train"])
def test_a_class_folder_without_images_leaves_no_run_folder(cli, tmp_path, monkeypatch, toy_data, command):
    data = tmp_path / "data"
    shutil.copytree(toy_data.removeprefix("folder:"), data)
    for image in (data / "train" / "class1").iterdir():
        image.unlink()
    monkeypatch.chdir(tmp_path)
    args = ["search", "tiny", "--kernels", "reference"] if command == "search" else ["train", "DARTS_V2"]
    result = cli(*args, "--dataset", f"folder:{data}", "--out", "run")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert f"{data / 'train' / 'class1'}: a class folder without images" in result.stderr
    assert not (tmp_path / "run").exists()


def test_fused_kernels_that_cannot_be_built_leave_no_run_folder(cli, tmp_path, monkeypatch, toy_data):
    def broken(device_type, on_build=None):
        raise KernelBuildError("cannot build the fused cpu kernels: no compiler")

    monkeypatch.setattr(native, "load", broken)
    result = cli("search", "tiny", "--kernels", "fused", "--dataset", toy_data, "--out", str(tmp_path / "run"))
    assert result.exit_code != 0 and result.stderr.count("\n") == 1, result.output
    assert "cannot build the fused cpu kernels: no compiler" in result.stderr
    assert not (tmp_path / "run").exists()
