"""Building the fused kernels: the cache, the CUDA source on a GPU-less machine, clean failures."""

import pytest
import torch

from dmc.kernels import fused_mixed_sum, mixed_sum, native, select_mixed_sum
from dmc.kernels.native import KernelBuildError


def test_build_name_depends_on_sources_and_torch():
    assert native.build_name("cpu") != native.build_name("cuda")
    assert native.build_name("cpu") == native.build_name("cpu")
    assert torch.__version__ not in native.build_name("cpu")  # hashed, a valid module name
    assert native.build_name("cpu").isidentifier()


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DMC_KERNEL_CACHE", str(tmp_path))
    assert native.cache_dir() == tmp_path


def test_cpu_kernels_load_from_the_cache():
    native.load("cpu")
    assert native.is_loaded("cpu")
    assert (native.cache_dir() / native.build_name("cpu")).is_dir()


@pytest.mark.skipif(native.cuda_toolkit() is None, reason="no CUDA toolkit on this machine")
def test_cuda_source_compiles_and_loads_without_a_gpu():
    """nvcc builds the CUDA kernels here even with no GPU; loading registers them for CUDA tensors."""
    native.load("cuda")
    assert native.is_loaded("cuda")


def test_a_broken_compiler_gives_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(KernelBuildError) as info:
        native._build("cpu", "dmc_broken_build_test", tmp_path / "build")
    message = str(info.value)
    assert "cannot build the fused cpu kernels" in message and "--kernels reference" in message
    assert "\n" not in message


def test_unknown_device_type_is_refused():
    with pytest.raises(KernelBuildError, match="mps"):
        native.load("mps")


def test_select(monkeypatch):
    assert select_mixed_sum("reference", "cpu") == ("reference", mixed_sum)
    assert select_mixed_sum("fused", "cpu") == ("fused", fused_mixed_sum)
    assert select_mixed_sum("auto", "cpu") == ("fused", fused_mixed_sum)
    with pytest.raises(ValueError, match="kernels must be one of"):
        select_mixed_sum("triton", "cpu")


def test_auto_falls_back_when_the_build_fails(monkeypatch):
    def broken(device_type, on_build=None):
        raise KernelBuildError("cannot build the fused cpu kernels: no compiler")

    monkeypatch.setattr(native, "load", broken)
    messages = []
    assert select_mixed_sum("auto", "cpu", messages.append) == ("reference", mixed_sum)
    assert "no compiler" in messages[0]
    with pytest.raises(KernelBuildError):
        select_mixed_sum("fused", "cpu")
