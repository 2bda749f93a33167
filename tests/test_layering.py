"""The dependency rule: the core never imports onnx or the mm* stack; exporters/detection never the reverse."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("onnx", "onnxruntime", "onnxscript", "mmdet", "mmcv", "mmengine")
PLUGINS = ("dmc.exporters", "dmc.detection", "exporters", "detection")


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _matches(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_core_source_never_imports_heavy_stacks_or_plugins():
    core = [p for p in (ROOT / "dmc").rglob("*.py") if "cli" not in p.relative_to(ROOT / "dmc").parts]
    assert core
    for path in core:
        bad = {n for n in _imports(path, top_level_only=False) if _matches(n, HEAVY + PLUGINS)}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_cli_imports_plugins_only_inside_commands():
    for path in (ROOT / "dmc" / "cli").rglob("*.py"):
        bad = {n for n in _imports(path, top_level_only=True) if _matches(n, HEAVY + PLUGINS)}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)} at module level"


def test_plugins_use_the_dmc_namespace():
    for folder in ("exporters", "detection"):
        for path in (ROOT / folder).rglob("*.py"):
            bad = {n for n in _imports(path, top_level_only=False) if _matches(n, ("exporters", "detection"))}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: use dmc.{folder}"


def test_importing_the_core_and_cli_loads_no_heavy_stack():
    code = ("import sys, dmc, dmc.api, dmc.doctor, dmc.cli.main; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"


CLI_DOOR = ("dmc.api", "dmc.errors", "dmc.cli")


def test_cli_reaches_the_core_only_through_the_public_api():
    """CLI files import dmc.api, dmc.errors and dmc.cli.* only (plugins lazily, inside commands)."""
    for path in (ROOT / "dmc" / "cli").rglob("*.py"):
        core = {n for n in _imports(path, top_level_only=False)
                if _matches(n, ("dmc",)) and not _matches(n, CLI_DOOR + PLUGINS)}
        assert not core, f"{path.relative_to(ROOT)} imports {sorted(core)}: go through dmc.api"
