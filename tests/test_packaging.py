"""The distribution: every package ships inside the dmc namespace, with the space specs."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_source_package_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for name, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
    return zipfile.ZipFile(next(out.glob("dmc-*.whl")))


def test_wheel_installs_only_the_dmc_namespace(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"dmc"}
    names = set(wheel.namelist())
    assert {"dmc/exporters/__init__.py", "dmc/detection/__init__.py", "dmc/cli/main.py",
            "dmc/spaces/darts_s0.yaml", "dmc/spaces/nb201.yaml", "dmc/reference/published_genotypes.json",
            "dmc/kernels/csrc/mixed_sum_cpu.cpp", "dmc/kernels/csrc/mixed_sum_cuda.cu", "dmc/kernels/csrc/common.h",
            "dmc/viz/cell.py"} <= names
    assert "dmc = dmc.cli.main:main" in wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
