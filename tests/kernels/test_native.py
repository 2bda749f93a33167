"""Building the fused kernels: the cache, the CUDA source without a GPU, clean failures, the C++ autograd."""

import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from filelock import FileLock
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from dmc.errors import InvalidInputError
from dmc.kernels import fused_mixed_sum, mixed_sum, native, select_kernels
from dmc.kernels.batchnorm_act import fused_batchnorm_act
from dmc.kernels.batchnorm_sum import fused_batchnorm_mixed_sum
from dmc.kernels.depthwise import fused_depthwise_conv2d
from dmc.kernels.max_pool import recomputing_max_pool2d
from dmc.kernels.native import KernelBuildError
from dmc.kernels.select import FUSED, REFERENCE, fused_kernels


def test_build_name_depends_on_sources_and_torch():
    assert native.build_name("cpu") != native.build_name("cuda")
    assert native.build_name("cpu") == native.build_name("cpu")
    assert torch.__version__ not in native.build_name("cpu")  # hashed, a valid module name
    assert native.build_name("cpu").isidentifier()


def test_cpu_build_name_depends_on_the_cpu(monkeypatch):
    """The CPU library is built with -march=native: a home folder shared by different CPUs keeps one build each."""
    here, cuda = native.build_name("cpu"), native.build_name("cuda")
    monkeypatch.setattr(native, "cpu_features", lambda: "sse2 only")
    assert native.build_name("cpu") != here and native.build_name("cuda") == cuda


def _recorded_builds(monkeypatch, tmp_path) -> list[dict]:
    """The keyword arguments of every ``cpp_extension.load`` call from here on (nothing is compiled), the cache in
    ``tmp_path/cache``, no kernels loaded."""
    calls = []
    monkeypatch.setattr(native, "quiet_cpp_extension", lambda: SimpleNamespace(load=lambda **kw: calls.append(kw)))
    monkeypatch.setenv("DMC_KERNEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "_loaded", set())
    return calls


def test_two_checkouts_of_the_same_sources_share_one_build(monkeypatch, tmp_path):
    """The build compiles a copy of the sources inside its content-keyed folder: two checkouts give the build the
    same files and commands (ninja keeps the other's build), and changed sources get another folder."""
    calls = _recorded_builds(monkeypatch, tmp_path)
    names = []
    for checkout in ("a", "b"):
        csrc = shutil.copytree(native.CSRC, tmp_path / checkout / "csrc")
        monkeypatch.setattr(native, "CSRC", csrc)
        native.load("cpu", on_build=lambda message: None)
        monkeypatch.setattr(native, "_loaded", set())
        names.append(native.build_name("cpu"))
    assert names[0] == names[1] and calls[0] == calls[1]
    folder = tmp_path / "cache" / names[0]
    assert calls[0]["build_directory"] == str(folder)
    assert all(source.startswith(str(folder / "src")) for source in calls[0]["sources"])
    assert calls[0]["extra_include_paths"][0] == str(folder / "src")
    assert (folder / "src" / "common.h").read_bytes() == (native.CSRC / "common.h").read_bytes()
    with (native.CSRC / "common.h").open("a") as f:
        f.write("// changed\n")
    assert native.build_name("cpu") != names[0]


def test_a_build_and_a_wait_for_another_processs_build_are_said(monkeypatch, tmp_path, capsys):
    """A build is said (on stderr unless told otherwise); so is a wait while another process holds the build folder's
    lock, which is held, not merely present: a lock file left behind says nothing."""
    _recorded_builds(monkeypatch, tmp_path)
    folder = tmp_path / "cache" / native.build_name("cpu")
    native.load("cpu")  # no library yet: a build
    assert capsys.readouterr().err == (f"compiling the fused cpu kernels into {folder} (first use only, about a "
                                       "minute)\n")
    (folder / f"{native.build_name('cpu')}.so").touch()  # built
    monkeypatch.setattr(native, "_loaded", set())
    other = FileLock(str(folder / "dmc.lock"))
    other.acquire()  # another process building there; released once the wait has been said
    messages = []
    native.load("cpu", on_build=lambda message: (messages.append(message), other.release()))
    assert messages == [f"waiting for another process to finish building the fused cpu kernels in {folder}"]
    assert (folder / "dmc.lock").exists()
    monkeypatch.setattr(native, "_loaded", set())
    native.load("cpu")  # built, the lock free: loading says nothing
    assert capsys.readouterr().err == ""


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
    assert "cannot build the fused cpu kernels" in message and "use kernels reference" in message
    assert "use --kernels reference" in info.value.cli_text()  # the setting, as the command line names it
    assert "\n" not in message


def test_unknown_device_type_is_refused():
    with pytest.raises(KernelBuildError, match="mps"):
        native.load("mps")


def test_select(monkeypatch):
    assert select_kernels("reference", "cpu") == REFERENCE == ("reference", mixed_sum, None, None, None, None, None)
    assert select_kernels("fused", "cpu") == FUSED
    assert select_kernels("auto", "cpu") == FUSED and FUSED.mixed_sum is fused_mixed_sum
    with pytest.raises(InvalidInputError, match="kernels must be one of auto, fused, reference, got 'triton'"):
        select_kernels("triton", "cpu")  # bad input from Python: one line, as from the command line


def test_on_cuda_the_fused_kernels_leave_depthwise_convs_to_cudnn():
    """Measured on an H200 (benchmarks/RESULTS.md): cuDNN's depthwise convs beat ours, the fused mixed sum wins."""
    assert fused_kernels("cpu") is FUSED
    assert fused_kernels("cuda") == ("fused", fused_mixed_sum, None, None, recomputing_max_pool2d, None, None)
    assert fused_kernels(torch.device("cuda", 1)).depthwise is None


def test_auto_falls_back_when_the_build_fails(monkeypatch):
    def broken(device_type, on_build=None):
        raise KernelBuildError("cannot build the fused cpu kernels: no compiler")

    monkeypatch.setattr(native, "load", broken)
    messages = []
    assert select_kernels("auto", "cpu", messages.append) == REFERENCE
    assert "no compiler" in messages[0]
    with pytest.raises(KernelBuildError):
        select_kernels("fused", "cpu")


def test_fused_mixed_sum_loads_its_devices_kernels_at_first_use():
    """In a fresh process, the first call loads the CPU kernels (from the cache), which then serve the operator."""
    native.load("cpu")  # built (or found) here, so the child process only loads it
    script = """
import torch
from dmc.kernels import fused_mixed_sum, mixed_sum, native
assert not native.is_loaded("cpu")
assert not torch._C._dispatch_has_kernel_for_dispatch_key("dmc::mixed_sum", "CPU")
ys, w, aux = [torch.randn(2, 3, 4, 4) for _ in range(3)], torch.rand(3), torch.randn(2, 3, 4, 4)
out = fused_mixed_sum(ys, w, aux, torch.tensor(0.5))
assert native.is_loaded("cpu")
assert torch._C._dispatch_has_kernel_for_dispatch_key("dmc::mixed_sum", "CPU")
torch.testing.assert_close(out, mixed_sum(ys, w, aux, torch.tensor(0.5)))
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)


def _unloaded_and_unbuildable(monkeypatch):
    def broken(device_type, on_build=None):
        raise KernelBuildError(f"cannot build the fused {device_type} kernels: no compiler")

    monkeypatch.setattr(native, "_loaded", set())
    monkeypatch.setattr(native, "load", broken)


def test_fused_mixed_sum_fails_with_the_build_error_not_the_fallback(monkeypatch):
    _unloaded_and_unbuildable(monkeypatch)
    with pytest.raises(KernelBuildError, match="no compiler"):
        fused_mixed_sum([torch.randn(2, 3)], torch.ones(1))


def test_tracing_does_not_load_kernels(monkeypatch):
    _unloaded_and_unbuildable(monkeypatch)
    with FakeTensorMode():
        out = fused_mixed_sum([torch.randn(2, 3, 4, 4) for _ in range(2)], torch.rand(2))
    assert out.shape == (2, 3, 4, 4)
    compiled = torch.compile(fused_mixed_sum, fullgraph=True, backend="eager")
    ys, w = [torch.randn(2, 3) for _ in range(2)], torch.rand(2)
    torch.testing.assert_close(compiled(ys, w), mixed_sum(ys, w))
    meta = fused_mixed_sum([torch.empty(2, 3, device="meta")], torch.empty(1, device="meta"))
    assert meta.device.type == "meta"


def test_the_cpu_operators_differentiate_through_cpp_nodes():
    """Once the CPU kernels are loaded, autograd records the operators' C++ formulas (csrc/autograd_cpu.cpp), not
    the Python ones registered for every device: a Python node per call was a tenth of a search step."""
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    w = torch.rand(2, requires_grad=True)
    norm = nn.BatchNorm2d(3, affine=False)
    outputs = {
        "DepthwiseConv": fused_depthwise_conv2d(x, torch.randn(3, 1, 3, 3), 1, 1, 1, True),
        "BatchNormAct": fused_batchnorm_act(x, norm, "relu6"),
        "MixedSum": fused_mixed_sum([x, x * 2], w),
        "BatchNormMixedSum": fused_batchnorm_mixed_sum([x], [norm], [x * 2], w),
        "MaxPool": recomputing_max_pool2d(x, 3, 1, 1),
    }
    for name, out in outputs.items():
        assert out.grad_fn.name().startswith("torch::autograd::CppNode<dmc::") and name in out.grad_fn.name()
