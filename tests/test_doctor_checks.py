"""The library side of `dmc doctor`: checks report real versions and real breakage."""

import sys

from dmc.doctor import core_checks, diagnose, package_check


def test_package_check_reports_missing_and_broken_packages(tmp_path, monkeypatch):
    assert not package_check("surely-not-a-real-distribution-dmc").ok
    broken = package_check("torch", probe=lambda: 1 / 0)
    assert not broken.ok and "ZeroDivisionError" in broken.detail and broken.fix


def test_core_checks_compile_for_real():
    checks = {check.name: check for check in core_checks()}
    assert checks["python"].ok and sys.version.split()[0] in checks["python"].detail
    assert checks["c++ compiler"].ok, checks["c++ compiler"].detail
    assert "C++20" in checks["c++ compiler"].detail


def test_diagnose_appends_extra_providers():
    from dmc.doctor import Check

    checks = diagnose(lambda: [Check("extra", True, "yes")])
    assert checks[-1].name == "extra"
