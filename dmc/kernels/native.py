"""Builds and loads the fused kernels (``dmc::mixed_sum``, ``dmc::depthwise_conv2d``) at first use.

The C++ (and, on CUDA machines, CUDA) sources in ``csrc/`` are compiled with
``torch.utils.cpp_extension`` into a cache folder (``$DMC_KERNEL_CACHE``, else
``~/.cache/dmc/kernels``), one subfolder per source hash, torch version and Python, so a build happens
once per machine. The CPU library is built for the machine's own instruction set (``-march=native``), so its
build name also hashes the CPU's feature flags: a home folder shared by different machines keeps one build per
kind of CPU. Loading a library registers its kernels for the ``dmc::`` operators on its device type, overriding
the plain-PyTorch implementations there.

The sources are compiled from a copy inside their build folder, not from the checkout: the build's commands then
name the same files in every checkout of the same sources, which share one build instead of rebuilding it over
each other (ninja rebuilds whatever a changed command line produced). A build, or a wait for another process's
build (an advisory lock in the build folder), is said in one line before it starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import platform
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from filelock import FileLock, Timeout
from torch._subclasses.fake_tensor import is_fake

from dmc.errors import NamedSettingsError

CSRC = Path(__file__).parent / "csrc"
SOURCES = {"cpu": ["mixed_sum_cpu.cpp", "depthwise_cpu.cpp", "batchnorm_sum_cpu.cpp", "batchnorm_act_cpu.cpp",
                   "max_pool_cpu.cpp", "running_stats_cpu.cpp", "separable_cpu.cpp", "autograd_cpu.cpp"],
           "cuda": ["mixed_sum_cuda.cu", "depthwise_cuda.cu"]}
HEADERS = ["common.h", "depthwise_common.h", "batchnorm_common.h", "dispatch.h"]
# process-wide by nature: a loaded library registers its kernels with PyTorch's dispatcher for the whole process,
# and cannot be unloaded
_loaded: set[str] = set()
_lock = threading.Lock()


class KernelBuildError(NamedSettingsError):
    """The fused kernels could not be compiled or loaded on this machine (the hint names the ``kernels`` setting)."""


def cache_dir() -> Path:
    root = os.environ.get("DMC_KERNEL_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dmc" / "kernels"


def build_name(device_type: str) -> str:
    """The library's name: device, a hash of its sources, torch version, Python and (CPU) the CPU's features."""
    digest = hashlib.sha256()
    for name in [*SOURCES[device_type], *HEADERS]:
        digest.update((CSRC / name).read_bytes())
    digest.update(torch.__version__.encode())
    digest.update(sys.version.split()[0].encode())
    if device_type == "cpu":
        digest.update(cpu_features().encode())
    return f"dmc_kernels_{device_type}_{digest.hexdigest()[:12]}"


def cpu_features() -> str:
    """What ``-march=native`` compiles for: the CPU's feature flags (Linux), else its architecture name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return platform.machine() + " " + platform.processor()


def is_loaded(device_type: str) -> bool:
    return device_type in _loaded


def load_for(x: torch.Tensor) -> None:
    """Loads the kernels of ``x``'s device type if there are any and they are not loaded yet (see :func:`load`)."""
    if x.device.type in _loaded or x.device.type not in SOURCES:  # every call: the cheap test first
        return
    # while torch.compile or a fake-tensor trace runs, only shapes flow: loading a library there would break the
    # trace, and the kernels are looked up when the traced graph runs on real tensors
    if torch.compiler.is_compiling() or is_fake(x):
        return
    load(x.device.type)


def load(device_type: str, on_build: Callable[[str], None] | None = None) -> None:
    """Makes the fused kernels of ``device_type`` ('cpu' or 'cuda') active, compiling them if needed.

    ``on_build`` (default: a line on stderr) is told when a build starts or waits for another process's build.
    Raises :class:`KernelBuildError` (one line naming the compiler problem) when they cannot be built.
    """
    if device_type not in SOURCES:
        raise KernelBuildError(f"no fused kernels for device type {device_type!r}",
                               "use {kernels} reference on this device")
    with _lock:
        if device_type in _loaded:
            return
        name = build_name(device_type)
        folder = cache_dir() / name
        say = on_build or _to_stderr
        with _exclusive_build(folder, device_type, say):
            if not (folder / f"{name}.so").is_file():
                say(f"compiling the fused {device_type} kernels into {folder} (first use only, about a minute)")
            _build(device_type, name, folder)
        _loaded.add(device_type)


@contextlib.contextmanager
def _exclusive_build(folder: Path, device_type: str, say: Callable[[str], None]) -> Iterator[None]:
    """Holds ``folder/dmc.lock`` (an advisory lock: the system releases it when its process dies, so a killed build
    never blocks later ones) while this process builds or loads there; says so when another process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / "dmc.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"waiting for another process to finish building the fused {device_type} kernels in {folder}")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def quiet_cpp_extension():
    """``torch.utils.cpp_extension``, imported without its "No CUDA runtime is found" warning, which it
    logs on every CPU-only machine."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension as module
    finally:
        logger.setLevel(level)
    return module


def _build(device_type: str, name: str, folder: Path) -> None:
    extension = quiet_cpp_extension()
    folder.mkdir(parents=True, exist_ok=True)
    cuda = device_type == "cuda"
    if cuda:
        extension.CUDA_HOME = cuda_toolkit()
    if cuda and extension.CUDA_HOME is None:
        raise KernelBuildError("cannot build the fused CUDA kernels: no CUDA toolkit (nvcc) found",
                               "install the CUDA toolkit, set CUDA_HOME, or use {kernels} reference")
    if cuda and not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        # nothing to detect the architecture from (a build-only machine): Ampere and Hopper, plus PTX
        os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0+PTX"
    try:
        sources = stage_sources(device_type, folder)
        extension.load(
            name=name, sources=[str(sources / s) for s in SOURCES[device_type]],
            extra_include_paths=[str(sources), *(_pip_cuda_includes() if cuda else [])],
            extra_cflags=["-O3", "-fopenmp", *([] if cuda else _native_arch())], extra_ldflags=["-fopenmp"],
            extra_cuda_cflags=["-O3", "--use_fast_math"] if cuda else None,
            build_directory=str(folder), is_python_module=False, verbose=False)
    except (RuntimeError, OSError, ImportError) as exc:
        detail = _first_error_line(str(exc))
        raise KernelBuildError(f"cannot build the fused {device_type} kernels in {folder}: {detail}",
                               "install a C++20 compiler (g++ 10 or newer)" + (" and CUDA 12+" if cuda else "")
                               + f" (or delete {folder} if a build was interrupted), or use {{kernels}} reference"
                               ) from None


def stage_sources(device_type: str, folder: Path) -> Path:
    """``folder/src``, holding a copy of ``device_type``'s sources and the headers: what the build compiles, at a
    path that depends only on their content (the build folder's name hashes it). A file already there with the
    same bytes is left alone: a new modification time would make ninja rebuild."""
    staged = folder / "src"
    staged.mkdir(parents=True, exist_ok=True)
    for name in [*SOURCES[device_type], *HEADERS]:
        content, target = (CSRC / name).read_bytes(), staged / name
        if target.is_file() and target.read_bytes() == content:
            continue
        partial = staged / f".{name}.{os.getpid()}.tmp"
        partial.write_bytes(content)
        os.replace(partial, target)
    return staged


def _native_arch() -> list[str]:
    # vectorised for this CPU; the depthwise kernels' channel blocks are one AVX-512 (or two AVX2) registers
    return ["-march=native"] if platform.machine() in ("x86_64", "AMD64", "aarch64", "arm64") else []


def cuda_toolkit() -> str | None:
    """The CUDA toolkit folder the CUDA kernels build with, or None.

    torch takes CUDA_HOME from ``which nvcc``; when that is a wrapper script outside the toolkit
    (``/usr/local/bin/nvcc``) it finds no ``libcudart`` there, so this falls back to ``/usr/local/cuda``.
    """
    detected = quiet_cpp_extension().CUDA_HOME
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or detected is None:
        return detected
    if any(Path(detected, lib, "libcudart.so").exists() for lib in ("lib64", "lib")):
        return detected
    fallback = Path("/usr/local/cuda")
    return str(fallback) if (fallback / "bin" / "nvcc").exists() else detected


def _pip_cuda_includes() -> list[str]:
    """Header folders of the ``nvidia-*`` wheels torch depends on (cuSPARSE, cuBLAS, ...), which a
    minimal CUDA toolkit may lack."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(str(p) for root in spec.submodule_search_locations for p in Path(root).glob("*/include"))


def _first_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for marker in ("error:", "error"):
        for line in lines:
            if marker in line.lower():
                return line[:300]
    return (lines[-1] if lines else "unknown error")[:300]
