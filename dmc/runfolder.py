"""Run folders of search and training: the one module that knows their files and the order they are written in.

A run folder holds ``config.json`` (the settings and what the run ran on), ``space.yaml`` (search runs: the
space as searched), ``history.jsonl`` (one record per finished epoch), ``best.pt`` and ``last.pt``
(checkpoints), the run's result (``genotype.json`` or ``result.json``) and TensorBoard events in ``tb/``.

Each epoch ends with three writes, in this order: its ``history.jsonl`` record (appended), ``best.pt`` (when
the epoch is the best so far) and ``last.pt`` (both atomic). A kill at any instant therefore leaves a folder
whose newest checkpoint is complete: ``last.pt``, or ``best.pt`` one epoch ahead of it when the kill fell
between the two. Resume continues from that one (:meth:`RunFolder.resume_state`) and drops the history
records written after it (:meth:`RunFolder.keep_history`), so the resumed run ends as the uninterrupted one.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dmc.checkpoints import (
    SEARCH_CHECKPOINT,
    TRAIN_CHECKPOINT,
    load_checkpoint,
    save_checkpoint,
)
from dmc.errors import InvalidInputError
from dmc.families import AnySpace
from dmc.io import (
    WriteError,
    atomic_write,
    atomic_write_text,
    read_json,
    read_text,
    read_yaml,
)
from dmc.space import space_from_dict

KILL_AFTER_ENV = "DMC_TEST_KILL_AFTER"
DAMAGED_HINT = "restore it from a copy, or rerun in a new folder"


class DamagedRunFile(InvalidInputError):
    """A run folder's own file that does not parse: the hint says how to recover, not how to edit it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, DAMAGED_HINT)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's ``config.json``: its ``config`` mapping holds the settings the run was started with."""
    path = Path(run_dir) / "config.json"
    saved = read_json(path, "run config", DamagedRunFile)
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise DamagedRunFile(f"{path}: damaged (no settings mapping)")
    return saved


def history_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "history.jsonl"


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of a run folder (record i is epoch i).

    A last line cut short (a kill or a full disk during its append) is not a record and is skipped; any
    other unreadable line raises :class:`InvalidInputError` naming the file and the line.
    """
    path = history_path(run_dir)
    if not path.is_file():
        return []
    lines = read_text(path, "history file", DamagedRunFile).split("\n")
    unterminated = lines.pop()  # "" when the file ends with its newline
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines + [unterminated], 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            if number > len(lines):
                break  # the torn last append
            raise DamagedRunFile(f"{path}: line {number} is damaged (not a JSON record)") from None
        epoch = record.get("epoch") if isinstance(record, dict) else None
        if type(epoch) is not int or epoch != len(records):
            raise DamagedRunFile(f"{path}: line {number} is damaged (not the record of epoch {len(records)})")
        records.append(record)
    return records


def keep_history(run_dir: str | Path, epochs: int) -> None:
    """Keeps the first ``epochs`` records (those the resumed checkpoint has seen): records written after it,
    and a torn last line, are dropped."""
    records = read_history(run_dir)
    if len(records) < epochs:
        raise DamagedRunFile(f"{history_path(run_dir)}: damaged (it records {len(records)} of the {epochs} epochs "
                             "its checkpoint has)")
    atomic_write_text(history_path(run_dir), "".join(json.dumps(r) + "\n" for r in records[:epochs]))


def append_history(run_dir: str | Path, record: dict[str, Any]) -> None:
    """Appends one epoch's record (strict JSON: a non-finite number is a bug, never written)."""
    line = json.dumps(record, allow_nan=False) + "\n"
    path = history_path(run_dir)
    try:
        with path.open("a") as f:
            f.write(line)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}",
                         "free disk space, then continue with --resume") from None


def claim_new_run_dir(run_dir: Path, marker: str, command: str) -> None:
    """Creates ``run_dir`` for a new run; refuses one that already holds a run (``marker`` file)."""
    if (run_dir / marker).exists() or (run_dir / "last.pt").exists():
        raise InvalidInputError(f"{run_dir} already holds a {command}",
                                "pass --resume to continue it, or choose another --out folder")
    if run_dir.exists() and not run_dir.is_dir():
        raise InvalidInputError(f"{run_dir}: is a file, not a folder", "choose another --out folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create {run_dir}: {exc.strerror or exc}",
                         "check that its parent is writable, or choose another --out folder") from None


def resume_state(run_dir: Path, load) -> dict[str, Any] | None:
    """The newest complete checkpoint state of ``run_dir`` (``load`` reads one file), or None when no epoch
    has finished yet.

    When ``best.pt`` is one epoch ahead of ``last.pt`` (a kill between the two writes), the run continues from
    ``best.pt`` and ``last.pt`` becomes a copy of it; when ``last.pt`` records itself as the best epoch but
    ``best.pt`` lags or is missing, ``best.pt`` becomes a copy of ``last.pt``. A checkpoint that cannot be read,
    or a ``best.pt`` that is not otherwise the best epoch the newest checkpoint records, raises
    :class:`InvalidInputError` naming the file.
    """
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    states = {path: load(path) for path in (last, best) if path.is_file()}
    for path, state in states.items():
        epoch, best_epoch = state.get("epoch"), state.get("best_epoch")
        if type(epoch) is not int or type(best_epoch) is not int or not -1 <= best_epoch < epoch:
            raise DamagedRunFile(f"{path}: damaged checkpoint (no consistent epoch counters)")
    if not states:
        return None
    newest = max(states, key=lambda path: states[path]["epoch"])  # a tie keeps last.pt
    state = states[newest]
    stale = best not in states or states[best]["epoch"] != state["best_epoch"] + 1
    if stale and newest == last and state["best_epoch"] == state["epoch"] - 1:
        # last.pt is itself the best epoch, best.pt lags (earlier dmc wrote last.pt first and a kill between
        # the two writes left it so): the missing write is a copy
        atomic_write(best, lambda tmp: shutil.copyfile(last, tmp))
        return state
    if state["best_epoch"] >= 0 and stale:
        found = f"holds epoch {states[best]['epoch'] - 1}" if best in states else "is missing"
        raise DamagedRunFile(f"{best}: {found}, but {newest.name} records the best at epoch {state['best_epoch']}")
    if newest == best:
        atomic_write(last, lambda tmp: shutil.copyfile(best, tmp))
        written(f"last.pt@{state['epoch'] - 1}")  # the write the kill prevented
    return state


@contextlib.contextmanager
def restoring(run_dir: str | Path, what: str):
    """Loading a checkpoint's state into the live run: a missing key or a state that does not fit ``what`` (the
    supernet, the network) is one line naming the run folder."""
    try:
        yield
    except KeyError as exc:
        raise DamagedRunFile(f"{run_dir}: its checkpoint has no {exc} (damaged, or written by another dmc "
                             "version)") from None
    except (RuntimeError, ValueError, TypeError, AttributeError) as exc:
        raise DamagedRunFile(f"{run_dir}: its checkpoint does not fit {what} ({type(exc).__name__})") from None


def finished_message(run_dir: str | Path, epochs: int) -> str:
    """What resuming a run that has already finished says (its result is then reported as it was)."""
    return f"{run_dir} has already finished ({epochs} of {epochs} epochs): nothing to continue; its result:"


def check_world_size(state: dict[str, Any], process, run_dir: str | Path) -> None:
    """Refuses to resume a checkpoint on another number of processes than it was written on: its data order and
    per-process random generators belong to that number."""
    saved = state.get("world_size", 1)
    if saved != process.world_size:
        launch = "one process" if saved == 1 else f"{saved} processes (--nproc {saved}, or torchrun --nproc-per-node)"
        raise InvalidInputError(f"{run_dir} was run on {saved} process(es), this resume on {process.world_size}",
                                f"resume it on {launch}")


def written(label: str) -> None:
    """Marks a run-folder write done: ``history.jsonl@E``, ``best.pt@E``, ``last.pt@E`` (end of epoch E),
    ``config.json``, ``genotype.json``, ``result.json``.

    Test hook: with ``DMC_TEST_KILL_AFTER=<label>`` in the environment the process SIGKILLs itself right
    there, so the tests can prove that a kill after any write resumes to the uninterrupted result. The run
    lifecycle (:mod:`dmc.run_lifecycle`) also passes ``step@E.S`` after training step S of epoch E;
    ``rank<R>:<label>`` kills only process R of a distributed run.
    """
    target = os.environ.get(KILL_AFTER_ENV)
    if target is not None and target in (label, f"rank{os.environ.get('RANK', '0')}:{label}"):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class RunType:
    """What a run folder holds: a search or a training run."""

    command: str
    checkpoint_format: str
    checkpoint_name: str
    checkpoint_hint: str

    def load(self, path: str | Path) -> dict[str, Any]:
        """A checkpoint of this type of run, read as data with one-line errors."""
        return load_checkpoint(path, (self.checkpoint_format,), self.checkpoint_name, self.checkpoint_hint)

    def save(self, path: str | Path, state: dict[str, Any]) -> Path:
        return save_checkpoint(path, self.checkpoint_format, state)


SEARCH_RUN = RunType("search", SEARCH_CHECKPOINT, "dmc search checkpoint",
                     "use another checkpoint of the run (best.pt / last.pt) or rerun the search")
TRAIN_RUN = RunType("training run", TRAIN_CHECKPOINT, "dmc training checkpoint",
                    "use best.pt or last.pt of a `dmc train` run folder")


class RunFolder:
    """A search or training run folder (see the module docstring for its files)."""

    def __init__(self, path: str | Path, run_type: RunType):
        self.path, self.run_type = Path(path), run_type
        self.config_path, self.space_path = self.path / "config.json", self.path / "space.yaml"
        self.last, self.best = self.path / "last.pt", self.path / "best.pt"
        self.init = self.path / "init.pt"
        """Training runs of a given network: its starting weights (a network file)."""

    def claim(self) -> None:
        """Creates the folder for a new run; refuses one that already holds a run."""
        claim_new_run_dir(self.path, self.config_path.name, self.run_type.command)

    def write_config(self, data: dict[str, Any]) -> None:
        atomic_write_text(self.config_path, json.dumps(data, indent=2, allow_nan=False) + "\n")
        written(self.config_path.name)

    def read_config(self) -> dict[str, Any]:
        """``config.json``; its ``config`` mapping holds the settings the run was started with."""
        if not self.config_path.is_file():
            raise InvalidInputError(f"{self.path}: nothing to resume (no config.json)",
                                    f"start a new {self.run_type.command} there")
        return read_run_config(self.path)

    def write_space(self, space: AnySpace) -> None:
        atomic_write_text(self.space_path, yaml.safe_dump(space.to_dict(), sort_keys=False))

    def read_space(self) -> AnySpace:
        """The space as searched (``space.yaml``); a damaged file is named in a one-line error."""
        if not self.space_path.is_file():
            raise InvalidInputError(f"{self.path}: not a search run folder (no space.yaml)",
                                    "pass a folder written by `dmc search`")
        data = read_yaml(self.space_path, DamagedRunFile)
        try:
            return space_from_dict(data, str(self.space_path))
        except InvalidInputError as exc:  # dmc wrote it valid: it was damaged since
            raise DamagedRunFile(f"damaged {exc.message}") from None

    def history(self) -> list[dict[str, Any]]:
        return read_history(self.path)

    def keep_history(self, epochs: int) -> None:
        keep_history(self.path, epochs)

    def load(self, which: str) -> dict[str, Any]:
        """The ``best`` or ``last`` checkpoint's state."""
        return self.run_type.load(self.path / f"{which}.pt")

    def resume_state(self) -> dict[str, Any] | None:
        """The newest complete checkpoint state, or None when no epoch has finished yet (see :func:`resume_state`)."""
        return resume_state(self.path, self.run_type.load) if self.path.is_dir() else None

    def end_epoch(self, epoch: int, record: dict[str, Any], state: dict[str, Any], improved: bool) -> None:
        """The three writes that end an epoch, in their crash-consistent order: history, best (when
        ``improved``), last."""
        append_history(self.path, record)
        written(f"history.jsonl@{epoch}")
        if improved:
            self.run_type.save(self.best, state)
            written(f"best.pt@{epoch}")
        self.run_type.save(self.last, state)
        written(f"last.pt@{epoch}")

    def write_result(self, name: str, write) -> Path:
        """Writes the run's result file ``name`` with ``write(path)`` (atomic)."""
        path = write(self.path / name)
        written(name)
        return path
