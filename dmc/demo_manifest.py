"""The demo folder's manifest (``manifest.json``): where each stage of the demo leaves its results.

``scripts/demo.sh`` writes it at its start, before any stage runs; ``dmc report`` reads it, so the report
knows no folder layout of its own. Paths are relative to the demo folder (absolute paths work too)::

    {
      "version": 1,
      "searches": [{"name": "darts-minus", "title": "DARTS- (auxiliary skip, beta 1 -> 0)",
                    "run": "search-darts-minus"}, ...],
      "train_run": "train",
      "onnx_report": "darts-minus.onnx.json",
      "detector_scalars": "detect/*/vis_data/scalars.json",
      "detector_export": "detect.onnx.json",
      "chain": {"title": "...", "searches": [...], "train_run": "chain/train", ...}
    }

``searches``: the search run folders, in report order; ``name`` names the pictures' folder (``viz/<name>``),
``title`` the row. ``train_run``: a ``dmc train`` run folder. ``onnx_report``: the report ``dmc export``
writes beside the model. ``detector_scalars``: a glob of the detector's scalar logs (mmengine writes
``<work_dir>/<time>/vis_data/scalars.json``), read in sorted order. ``detector_export``: the report
``dmc detect export`` writes beside the exported detector. ``chain``: the same stages for the chain
space's pipeline (with a ``title``, no ``version``), reported after the cell space's. Every key but
``version`` may be left out; a stage left out, or whose files are not there, is reported as missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmc.errors import InvalidInputError
from dmc.io import read_json

MANIFEST = "manifest.json"
VERSION = 1
KEYS = ("version", "searches", "train_run", "onnx_report", "detector_scalars", "detector_export", "chain")
CHAIN_KEYS = ("title", "searches", "train_run", "onnx_report", "detector_scalars", "detector_export")
SEARCH_KEYS = ("name", "title", "run")
HINT = "see the manifest format in dmc/demo_manifest.py (scripts/demo.sh writes one)"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class SearchEntry:
    """One search run of the demo: ``name`` (the pictures' folder), ``title`` (the report's row), ``run``."""

    name: str
    title: str
    run: Path


@dataclass(frozen=True)
class DemoManifest:
    """Where the demo's stages leave their results; ``None`` for a stage the manifest leaves out."""

    folder: Path
    searches: tuple[SearchEntry, ...] = ()
    train_run: Path | None = None
    onnx_report: Path | None = None
    detector_scalars: tuple[Path, ...] | None = None
    detector_export: Path | None = None
    """The report of ``dmc detect export``."""
    title: str | None = None
    """The chain pipeline's heading."""
    chain: DemoManifest | None = None
    """The stages of the chain space's pipeline."""


def read_manifest(demo_dir: str | Path) -> DemoManifest:
    """The manifest of ``demo_dir``; a missing or malformed one raises :class:`InvalidInputError` naming it."""
    folder = Path(demo_dir)
    path = folder / MANIFEST
    if not path.exists():
        raise InvalidInputError(f"{path}: no demo manifest", "pass a folder written by `make demo` (scripts/demo.sh), "
                                "or write its manifest.json: see dmc/demo_manifest.py")
    return parse_manifest(read_json(path, "demo manifest"), folder, str(path))


def parse_manifest(data: Any, folder: Path, source: str) -> DemoManifest:
    """Checks manifest ``data`` read from ``source``; paths are resolved against ``folder``."""
    _check_keys(data, KEYS, source)
    if data.get("version") != VERSION:
        problem = f"'version' is {data['version']!r}" if "version" in data else "no 'version'"
        raise InvalidInputError(f"{source}: {problem} (this dmc reads manifest version {VERSION})",
                                f"write \"version\": {VERSION} ({HINT})")
    chain = None
    if "chain" in data:
        _check_keys(data["chain"], CHAIN_KEYS, f"{source}: chain")
        chain = _stages(data["chain"], folder, f"{source}: chain")
    return _stages(data, folder, source, chain)


def _stages(data: dict, folder: Path, source: str, chain: DemoManifest | None = None) -> DemoManifest:
    searches = data.get("searches", [])
    if not isinstance(searches, list):
        raise InvalidInputError(f"{source}: 'searches' is {_kind(searches)}, not a list", HINT)
    entries = tuple(_search(entry, folder, f"{source}: searches[{i}]") for i, entry in enumerate(searches))
    names = [e.name for e in entries]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InvalidInputError(f"{source}: searches[{i}]: name {name!r} is given twice",
                                    "give each search its own name")
    paths = {key: folder / _text(data, key, source) for key in ("train_run", "onnx_report", "detector_export")
             if key in data}
    scalars = _text(data, "detector_scalars", source) if "detector_scalars" in data else None
    return DemoManifest(folder, entries, paths.get("train_run"), paths.get("onnx_report"),
                        None if scalars is None else _glob(folder, scalars, source), paths.get("detector_export"),
                        _text(data, "title", source) if "title" in data else None, chain)


def _search(entry: Any, folder: Path, source: str) -> SearchEntry:
    _check_keys(entry, SEARCH_KEYS, source)
    for key in SEARCH_KEYS:
        if key not in entry:
            raise InvalidInputError(f"{source}: no {key!r}", f"give each search a name, a title and a run ({HINT})")
    name = _text(entry, "name", source)
    if not _NAME.fullmatch(name):
        raise InvalidInputError(f"{source}: name {name!r} is not a plain folder name",
                                "use letters, digits, '-', '_' and '.' (it names the folder viz/<name>)")
    return SearchEntry(name, _text(entry, "title", source), folder / _text(entry, "run", source))


def _check_keys(data: Any, known: tuple[str, ...], source: str) -> None:
    if not isinstance(data, dict):
        raise InvalidInputError(f"{source}: is {_kind(data)}, not a JSON object", HINT)
    unknown = [key for key in data if key not in known]
    if unknown:
        raise InvalidInputError(f"{source}: unknown key {unknown[0]!r}", f"known keys: {', '.join(known)}")


def _text(data: dict, key: str, source: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{source}: {key!r} is {_kind(value)}, not a non-empty string", HINT)
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _glob(folder: Path, pattern: str, source: str) -> tuple[Path, ...]:
    """The files matching ``pattern`` (relative to ``folder``, or absolute), sorted."""
    path = Path(pattern)
    base, relative = folder, pattern
    if path.is_absolute():  # Path.glob takes relative patterns only
        base, relative = Path(path.anchor), str(path.relative_to(path.anchor))
    try:
        return tuple(sorted(p for p in base.glob(relative) if p.is_file()))
    except (ValueError, IndexError, NotImplementedError):
        raise InvalidInputError(f"{source}: 'detector_scalars' {pattern!r} is not a usable file pattern",
                                "give the logs' path, '*' for the parts that vary") from None
