"""File I/O: atomic writes (a reader, or a crash, never sees a half-written file) and reading user files
(text, YAML, JSON) as data, with one-line errors."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from dmc.errors import DmcError, InvalidInputError


class WriteError(DmcError):
    """A file could not be written (folder missing or read-only, disk full, ...): the environment's problem."""


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Calls ``write(tmp)`` on a temporary file beside ``path``, then renames it over ``path``.

    The file gets the mode a plain ``open(path, "w")`` would give it (the umask's, or the mode of the file
    it replaces). A file-system error raises :class:`WriteError` naming ``path``; no temporary file is left.
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"{path}: is a folder, not a file", "give a file name (inside it, or elsewhere)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, _new_file_mode(path))
        finally:
            os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from None
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def _write_error(path: Path, exc: OSError) -> WriteError:
    # name the file only when it is not ``path`` or its temporary twin (e.g. the ancestor mkdir failed on)
    where = f" ({exc.filename})" if exc.filename and Path(exc.filename).parent != path.parent else ""
    return WriteError(f"cannot write {path}: {exc.strerror or exc}{where}",
                      "check that its folder exists, is writable and has free space, or write elsewhere")


def _new_file_mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)  # replacing a file keeps its mode, as writing into it would
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask can only be read by setting it, racing other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_text(path: str | Path, what: str = "file", error: type[InvalidInputError] = InvalidInputError) -> str:
    """A user's text file as a string; a missing, unreadable or non-UTF-8 file raises ``error`` naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}", f"pass the {what} itself") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}", "check the path and its permissions") \
            from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a text file (invalid UTF-8 at byte {exc.start})",
                    f"pass a UTF-8 text {what}") from None


class YamlDataError(yaml.constructor.ConstructorError):
    """A YAML document that parses but is not acceptable data; ``problem`` and ``hint`` become the one-line error."""

    def __init__(self, problem: str, hint: str, mark):
        super().__init__(None, None, problem, mark)
        self.hint = hint


MAX_YAML_VALUES = 100_000
"""Values a YAML document may hold once its aliases are expanded: far more than any dmc file or detector config
(a spec holds about a hundred, mmdet's configs a few thousand), far fewer than an alias bomb ("billion laughs":
nested ``&a``/``*a`` lists that double at each level), which every walk of the data would expand."""


class YamlDataLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing duplicate mapping keys (YAML forbids them; PyYAML would silently
    keep the last one, so a setting written twice would be half ignored), and documents whose aliases expand
    to more than :data:`MAX_YAML_VALUES` values, or into themselves."""

    def construct_document(self, node):
        _check_expanded_size(node)
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may repeat keys by design
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: the base constructor refuses it with its own message
                    continue
                if duplicate:
                    raise YamlDataError(f"duplicate key {key!r}", "give each key once", key_node.start_mark)
        return super().construct_mapping(node, deep)


def _check_expanded_size(root: yaml.Node) -> None:
    """Counts the values of ``root`` with its aliases expanded, each node once (an alias is the node it names):
    linear in the file's size, where walking the expanded data is exponential in its nesting of aliases."""
    sizes: dict[int, int | None] = {}  # id(node) -> expanded size; None while the node is being counted

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            known = sizes[id(node)]
            if known is None:
                raise YamlDataError("an alias inside the value it names (the value would contain itself)",
                                    "write the value out instead of the alias", node.start_mark)
            return known
        sizes[id(node)] = None
        children = node.value if isinstance(node, yaml.SequenceNode) else (
            [child for pair in node.value for child in pair] if isinstance(node, yaml.MappingNode) else [])
        total = 1 + sum(size(child) for child in children)
        if total > MAX_YAML_VALUES:
            raise YamlDataError(f"more than {MAX_YAML_VALUES} values once its aliases are expanded (an alias bomb?)",
                                "write the values out, or use fewer nested aliases", node.start_mark)
        sizes[id(node)] = total
        return total

    size(root)


def read_yaml(path: str | Path, error: type[InvalidInputError] = InvalidInputError) -> Any:
    """Parses a YAML file as data (safe loading, duplicate keys refused); unreadable files, syntax errors
    and duplicate keys raise ``error`` naming the file, and the line and column of the problem."""
    return parse_yaml(read_text(path, "YAML file", error), str(path), error)


def parse_yaml(text: str, source: str, error: type[InvalidInputError] = InvalidInputError,
               loader: type[YamlDataLoader] = YamlDataLoader) -> Any:
    """Parses YAML text from ``source`` (a file name, for errors) with ``loader`` (a :class:`YamlDataLoader`,
    possibly with more data constructors), with the errors of :func:`read_yaml`."""
    path = source
    try:
        return yaml.load(text, Loader=loader)
    except YamlDataError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise error(f"{path}: {where}{exc.problem}", exc.hint) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{path}: {where}YAML syntax error: {problem}", "fix the YAML syntax") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply to be a dmc file", "check that it is the file you meant") from None


def parse_json(text: str, source: str, error: type[InvalidInputError] = InvalidInputError) -> Any:
    """Parses JSON text from ``source`` (a file name, for errors) as data."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                    "fix the JSON syntax") from None
    except RecursionError:
        raise error(f"{source}: nested too deeply to be a dmc file", "check that it is the file you meant") from None


def read_json(path: str | Path, what: str = "JSON file", error: type[InvalidInputError] = InvalidInputError) -> Any:
    """A user's JSON file as data, with one-line errors (unreadable, not UTF-8, syntax, nesting)."""
    return parse_json(read_text(path, what, error), str(path), error)
