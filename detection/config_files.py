"""Reading detector config files: Python configs are code, YAML and JSON configs are data.

A Python config (``.py``) is a program, by mmengine's design: it runs when it is read, so use only
Python configs you trust. A YAML or JSON config is read as data (``yaml.safe_load`` / ``json``): mmengine's
own reader would use PyYAML's unsafe loader, which runs ``!!python/...`` tags; its registries import any
dotted ``type`` name they do not know, and mmcv/mmdet pass a few settings to ``eval``. So a data config
here may name only registered types and scopes, gives evaluated settings only their known values, may not
inherit (``_base_`` could be a Python file) and may import only dmc's detection modules.
"""

from __future__ import annotations

import ast
import re
import traceback
from pathlib import Path
from typing import Any

import yaml
from mmengine.config import Config

from dmc.errors import DmcError, InvalidInputError
from dmc.io import YamlDataError, YamlDataLoader, parse_json, parse_yaml, read_text

PYTHON_SUFFIXES = (".py",)
DATA_SUFFIXES = (".yaml", ".yml", ".json")
ALLOWED_IMPORTS = ("dmc.detection",)
"""Modules a data config may list in ``custom_imports`` (this package and its submodules)."""
_NAMED_KEYS = ("type", "constructor")
"""Keys whose string values mmengine resolves to a class or function through its registries."""
_SCOPE_KEYS = ("_scope_", "default_scope")
EVALUATED_NAMES = {"nms", "soft_nms"}
"""NMS ``type``s, which mmcv's ``batched_nms`` looks up with ``eval`` rather than a registry."""
EVALUATED_SETTINGS = {"warp_mode": (re.compile(r"cv2\.MOTION_[A-Z]+"), "cv2.MOTION_EUCLIDEAN")}
"""Other settings that mmdet passes to ``eval`` (CameraMotionCompensation): the values they may take, an example."""


def load_config(config: str | Path | dict | Config) -> Config:
    """Reads an mmengine config from a file (or takes a dict / Config as is).

    ``.py`` files run as Python (mmengine's convention); ``.yaml``, ``.yml`` and ``.json`` files are
    read as data only. Every problem with the file is one :class:`InvalidInputError` naming it.
    """
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return Config(config)
    path = Path(config)
    if not path.is_file():
        raise InvalidInputError(f"config file {path} does not exist",
                                "write one with `dmc detect config` or pass the path of an mmdet config")
    if path.suffix not in PYTHON_SUFFIXES + DATA_SUFFIXES:
        raise InvalidInputError(f"{path}: a config is a .py, .yaml, .yml or .json file",
                                "write one with `dmc detect config`")
    text = read_text(path, "config")
    if path.suffix in PYTHON_SUFFIXES:
        return _python_config(path, text)
    return _data_config(path, text)


def _python_config(path: Path, text: str) -> Config:
    try:
        ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise InvalidInputError(f"{path}: line {exc.lineno}: Python syntax error: {exc.msg}",
                                "fix the config's syntax") from None
    try:
        return Config.fromfile(str(path))
    except ImportError as exc:
        raise DmcError(f"{path}: the config imports a module that cannot be imported ({_first_line(exc)})",
                       "install it, or fix the config's imports") from None
    except Exception as exc:  # the config is a program: it can raise anything while it runs
        raise InvalidInputError(f"{path}: {_line_of(path, exc)}the config raised {type(exc).__name__}: "
                                f"{_first_line(exc)}", "fix the config") from None


class _TupleLoader(YamlDataLoader):
    """dmc's YAML data loader plus ``!!python/tuple``: a tuple of data, as mmengine writes YAML configs, and as
    mmcv's transforms need sizes (``Resize(scale=...)``). Any other Python tag is refused."""


def _python_tag(loader: _TupleLoader, suffix: str, node: yaml.Node):
    raise YamlDataError("a Python tag in a YAML config (YAML configs are data: nothing in them runs)",
                        "remove the tag; code belongs in a Python config you trust", node.start_mark)


_TupleLoader.add_constructor("tag:yaml.org,2002:python/tuple",
                             lambda loader, node: tuple(loader.construct_sequence(node, deep=True)))
_TupleLoader.add_multi_constructor("tag:yaml.org,2002:python/", _python_tag)


def _data_config(path: Path, text: str) -> Config:
    data = parse_json(text, str(path)) if path.suffix == ".json" else parse_yaml(text, str(path), loader=_TupleLoader)
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: expected a mapping of settings at the top level")
    check_data_config(data, str(path))
    return Config(data, filename=str(path))


def check_data_config(data: dict[str, Any], source: str) -> None:
    """Refuses what would let a data config run code: inheritance, foreign imports, and ``type`` names or
    scopes that mmengine would import by name instead of finding in its registries."""
    from mmengine.utils import import_modules_from_strings

    if "_base_" in data:
        raise InvalidInputError(f"{source}: _base_: a YAML/JSON config cannot inherit (its bases could be code)",
                                "merge the bases into one file, or use a Python config you trust")
    custom = data.get("custom_imports") or {}
    imports = custom.get("imports", []) if isinstance(custom, dict) else None
    imports = [imports] if isinstance(imports, str) else imports
    if not isinstance(imports, list) or any(not isinstance(m, str) or not _allowed_import(m) for m in imports):
        raise InvalidInputError(f"{source}: custom_imports: a YAML/JSON config may import only "
                                f"{', '.join(ALLOWED_IMPORTS)} modules (got {imports!r})",
                                "register other modules from a Python config you trust")
    import_modules_from_strings(imports=imports)
    registered = registered_names()
    everywhere = set().union(*registered.values())
    for where, key, value in _named_values(data):
        if key in EVALUATED_SETTINGS:
            pattern, example = EVALUATED_SETTINGS[key]
            if not (isinstance(value, str) and pattern.fullmatch(value)):
                raise InvalidInputError(f"{source}: {where}: {value!r} is not a {key}", f"e.g. {example}")
            continue
        if key in _SCOPE_KEYS:
            if value is not None and value not in registered:
                raise InvalidInputError(f"{source}: {where}: unknown scope {value!r}",
                                        f"known scopes: {', '.join(sorted(registered))}")
            continue
        scope, _, name = value.rpartition(".") if isinstance(value, str) else ("", "", None)
        if name not in (registered.get(scope, set()) if scope else everywhere | EVALUATED_NAMES):
            raise InvalidInputError(f"{source}: {where}: {value!r} is not a registered type",
                                    "a YAML/JSON config names registered types only (e.g. RetinaNet, FPN); "
                                    "dotted import paths need a Python config")


def _allowed_import(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in ALLOWED_IMPORTS)


def _named_values(node: Any, where: str = ""):
    """(location, key, value) of every key in a nested config whose value mmengine, mmdet or mmcv resolves
    to code: ``type``-like names, scopes and evaluated settings."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            named = key in (*_NAMED_KEYS, *_SCOPE_KEYS, *EVALUATED_SETTINGS)
            if named and not (key == "constructor" and value is None):
                yield here, key, value
            else:
                yield from _named_values(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _named_values(value, f"{where}[{i}]")


def registered_names() -> dict[str, set[str]]:
    """The names registered in mmengine's registry tree (mmdet and mmcv included), by scope."""
    import mmdet.registry  # noqa: F401  (puts mmdet's registries in the tree)
    import mmengine.registry as root
    from mmengine.registry import Registry

    names: dict[str, set[str]] = {}

    def walk(registry: Registry) -> None:
        registry.import_from_location()
        names.setdefault(registry.scope, set()).update(registry.module_dict)
        for child in registry.children.values():
            walk(child)

    for registry in vars(root).values():
        if isinstance(registry, Registry):
            walk(registry)
    return names


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _line_of(path: Path, exc: BaseException) -> str:
    """``line N: `` of the innermost frame of the config file itself, when the traceback reaches it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    return f"line {frames[-1].lineno}: " if frames else ""
