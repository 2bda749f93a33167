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


PACKAGES = {"dmc": ROOT / "dmc", "dmc.exporters": ROOT / "exporters", "dmc.detection": ROOT / "detection"}

KNOWN_CYCLES: list[set[str]] = []
"""Import cycles still to break (by the network-families refactor); the list may only shrink."""


def _module_graph() -> dict[str, set[str]]:
    """Every module of dmc (and its plugins) -> the modules it imports, at any depth of its code: `from a import b`
    imports module a.b where there is one, else a (its __init__)."""
    files = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            if package == "dmc" and parts and parts[0] in ("exporters", "detection"):
                continue  # mapped to exporters/ and detection/ (pyproject.toml's package-dir)
            files[".".join([package, *parts])] = path
    graph = {}
    for module, path in files.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                submodules = {f"{node.module}.{alias.name}" for alias in node.names} & files.keys()
                targets |= submodules or {node.module}
                if len(submodules) < len(node.names):
                    targets.add(node.module)
        graph[module] = (targets & files.keys()) - {module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    order, low, stack, cycles = {}, {}, [], []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for target in graph[module]:
            if target not in order:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], order[target])
        if low[module] == order[module]:
            component = set()
            while not component or module not in component:
                component.add(stack.pop())
            if len(component) > 1:
                cycles.append(component)

    for module in graph:
        if module not in order:
            visit(module)
    return cycles


def test_no_import_cycles_but_the_known_ones():
    """Function-level imports count: they only hide a cycle until the first call."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    cycles = _cycles(_module_graph())
    assert not [sorted(c) for c in cycles if c not in KNOWN_CYCLES], "a new import cycle"
    assert not [sorted(c) for c in KNOWN_CYCLES if c not in cycles], "a known cycle is gone: strike it from the list"
