"""Environment diagnostics behind `dmc doctor`: what is installed, and does it actually work.

Each check returns a :class:`Check`. The core checks Python, torch, CUDA and the compilers that
build dmc's own kernels; ``dmc.exporters.doctor`` and ``dmc.detection.doctor`` add checks for the
packages only they use, so that the core never imports them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

SETUP_HINT = "run `bash scripts/bootstrap.sh` in the dmc checkout to set up the environment"


@dataclass(frozen=True)
class Check:
    """The outcome of one diagnostic.

    ``required`` checks make `dmc doctor` fail; the others only inform (a machine without a GPU
    is fine). ``fix`` says what to do when ``ok`` is false.
    """

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    required: bool = True

    @property
    def failed(self) -> bool:
        return self.required and not self.ok


def package_check(distribution: str, module: str | None = None, probe: Callable[[], str] | None = None) -> Check:
    """Reports a distribution's version after importing ``module`` and running ``probe`` (if any).

    ``probe`` exercises what the version number alone cannot show (compiled ops, say) and returns
    extra detail; any exception it raises fails the check.
    """
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return Check(distribution, False, "not installed", fix=SETUP_HINT)
    try:
        importlib.import_module(module or distribution)
        extra = probe() if probe else ""
    except Exception as exc:  # any failure to import or run is what this check reports
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return Check(distribution, False, f"{version} installed but broken: {type(exc).__name__}: {first_line}",
                     fix=SETUP_HINT)
    return Check(distribution, True, f"{version}{', ' + extra if extra else ''}")


def _python_check() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, f"{platform.python_version()} ({sys.executable})",
                 fix="dmc needs Python 3.11 or newer")


def _cuda_check() -> Check:
    import torch

    if not torch.cuda.is_available():
        return Check("cuda", False, f"no GPU visible (torch built for CUDA {torch.version.cuda}); "
                                    "dmc runs on the CPU kernels", required=False)
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return Check("cuda", True, f"CUDA {torch.version.cuda}: {names}")


def _compiles(command: list[str], source: str, suffix: str) -> tuple[bool, str]:
    """Compiles ``source`` with ``command + [file, -o, out]``; returns (ok, first error line)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"probe{suffix}"
        src.write_text(source)
        try:
            done = subprocess.run([*command, str(src), "-o", str(Path(tmp) / "probe.o")],
                                  capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, str(exc)
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    return done.returncode == 0, (errors or done.stderr.splitlines() or [""])[0]


# C++20 (torch 2.13+ headers need it) and OpenMP (the fused CPU kernels use it).
_CXX_PROBE = ("#include <omp.h>\ntemplate <class T> concept Small = sizeof(T) <= 8;\n"
              "int f() { return omp_get_max_threads(); }\n")
_CUDA_PROBE = ("template <class T> concept Small = sizeof(T) <= 8;\n"
               "__global__ void k(float* x) { x[threadIdx.x] *= 2; }\n")


def _cxx_check() -> Check:
    compiler = os.environ.get("CXX", "c++")
    path = shutil.which(compiler)
    if path is None:
        return Check("c++ compiler", False, f"`{compiler}` not found",
                     fix="install a C++20 compiler with OpenMP (Debian: apt-get install g++), or set CXX")
    ok, error = _compiles([path, "-std=c++20", "-fopenmp", "-c"], _CXX_PROBE, ".cpp")
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    if not ok:
        return Check("c++ compiler", False, f"{version}: cannot compile C++20 with OpenMP: {error}",
                     fix="install g++ 10 or newer (C++20 and OpenMP), or point CXX at one")
    return Check("c++ compiler", True, f"{version} (C++20, OpenMP)")


def _nvcc_check(cuda_available: bool) -> Check:
    from dmc.kernels.native import quiet_cpp_extension

    CUDA_HOME = quiet_cpp_extension().CUDA_HOME  # noqa: N806 - torch's name

    candidates = [Path(CUDA_HOME) / "bin" / "nvcc"] if CUDA_HOME else []
    candidates += [Path(p) for p in [shutil.which("nvcc")] if p]
    nvcc = next((p for p in candidates if p.exists()), None)
    required = cuda_available  # without a GPU the CUDA kernels are never built
    if nvcc is None:
        return Check("nvcc", False, "not found", required=required,
                     fix="install the CUDA toolkit matching torch.version.cuda, or set CUDA_HOME")
    ok, error = _compiles([str(nvcc), "-std=c++20", "-c"], _CUDA_PROBE, ".cu")
    release = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True).stdout.strip().splitlines()
    version = release[-1] if release else str(nvcc)
    if not ok:
        return Check("nvcc", False, f"{version}: cannot compile a C++20 kernel: {error}", required=required,
                     fix="install a CUDA toolkit whose nvcc supports -std=c++20 (CUDA 12 or newer)")
    return Check("nvcc", True, f"{version} (C++20)", required=required)


def _kernels_check(device_type: str) -> Check:
    """Builds (first time) and runs the fused kernels (mixed sum, depthwise conv) against the reference, with the
    check searches run (:func:`dmc.kernels.self_check.check_fused`); optional: searches fall back to the reference."""
    from dmc.kernels import native
    from dmc.kernels.self_check import TOLERANCE, check_fused

    name = f"fused kernels ({device_type})"
    try:
        native.load(device_type)
        error = check_fused(device_type)
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        return Check(name, False, str(exc).splitlines()[0][:300], required=False,
                     fix="searches use --kernels reference meanwhile; see the c++ compiler/nvcc checks")
    if not error <= TOLERANCE:
        return Check(name, False, f"wrong results (max error {error:.1e})", required=False,
                     fix="rebuild: delete " + str(native.cache_dir()))
    return Check(name, True, f"built in {native.cache_dir()}, parity {error:.0e}", required=False)


def core_checks() -> list[Check]:
    """Python, torch, torchvision, CUDA, the C++/CUDA compilers and dmc's own fused kernels."""
    checks = [_python_check(), package_check("torch"), package_check("torchvision")]
    if not checks[1].ok:
        return checks
    import torch

    checks += [_cuda_check(), _cxx_check(), _nvcc_check(torch.cuda.is_available()), _kernels_check("cpu")]
    if torch.cuda.is_available():
        checks.append(_kernels_check("cuda"))
    return checks


def diagnose(*extra: Callable[[], Iterable[Check]]) -> list[Check]:
    """Runs the core checks, then each ``extra`` provider (e.g. ``dmc.exporters.doctor.checks``)."""
    checks = core_checks()
    for provider in extra:
        checks.extend(provider())
    return checks
