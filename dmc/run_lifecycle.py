"""One run lifecycle for search and training: everything a run does around its own steps, written once.

A kind of run (the search's weight and architecture steps, training's epoch) is a :class:`RunTask`: the hooks
:class:`RunLifecycle` calls at fixed points, in the spirit of mmengine's Runner and hooks. The lifecycle owns the
rest: seeding, and reseeding per process once the network is the same everywhere; resume (the epoch and best
counters, every process's random generators, the world size it was run on); each epoch's writes in the run
folder's crash-consistent order (:mod:`dmc.runfolder`); TensorBoard; progress events; the kill hook of the tests;
the non-finite checks. :func:`determinism_kept` and :func:`dmc.out_of_memory.out_of_memory_as` wrap a run.

How one step runs is :meth:`RunTask.step`, called in one place: it returns device tensors, which the lifecycle
keeps on the device and reads every :attr:`RunTask.read_every` steps, in one transfer: a step replayed as a CUDA
graph (:mod:`dmc.cuda_graphs`) then never waits for the host.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch

from dmc.distributed import Distributed
from dmc.runfolder import RunFolder, check_world_size, finished_message, restoring, written
from dmc.runtime import check_finite, evaluate, seed_everything

EventHandler = Callable[..., None]
"""Called as ``on_event(kind, **info)`` with kind ``epoch_start`` (epoch, epochs, steps), ``step``
(epoch, step, steps, loss), ``epoch_end`` (record) or ``status`` (message)."""

RANK_SEED_STRIDE = 7919
"""Process r of a distributed run reseeds with ``seed + RANK_SEED_STRIDE * r``."""

NOT_LOGGED = ("epoch", "seconds")
"""Numbers of an epoch's record that TensorBoard does not plot: its step axis and its wall time."""


@dataclass(frozen=True)
class StepOutput:
    """What one training step reports, as tensors on the run's device (read by the lifecycle after the step)."""

    loss: torch.Tensor
    """The batch's mean training loss (a scalar)."""
    correct: torch.Tensor
    """How many of the batch's images the step's forward classified right (a scalar)."""
    size: int
    """Images in the batch."""


class RunTask(Protocol):
    """What a kind of run does of its own; :class:`RunLifecycle` calls these hooks and does the rest."""

    restored_what: str
    """What a checkpoint's state is loaded into, for the error when it does not fit (``this supernet``)."""
    read_every: int
    """Steps whose losses and accuracies the lifecycle reads at once (1: after every step)."""

    def describe(self) -> str:
        """The start-up line: what runs, on what, with whose settings."""
        ...

    def folder_config(self) -> dict[str, Any]:
        """What ``config.json`` records: the settings and what the run runs on."""
        ...

    def state(self) -> dict[str, Any]:
        """Its own part of a checkpoint (weights, optimisers, schedulers, settings)."""
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        """Restores what :meth:`state` saved."""
        ...

    def begin_epoch(self, epoch: int) -> tuple[Iterable[Any], int]:
        """Sets epoch ``epoch`` up (its schedules, training mode, the samplers' epoch); its batches and their number."""
        ...

    def step(self, batch: Any) -> StepOutput:
        """One training step on ``batch``, as loaded: moved to the device, forward, backward, optimiser steps."""
        ...

    def end_epoch(self, epoch: int, train_loss: float, train_acc: float) -> dict[str, Any]:
        """The epoch's evaluations and per-epoch scheduler steps; its history record (the lifecycle adds its wall
        time), given the mean training loss and accuracy over every process."""
        ...

    def record_best(self, record: dict[str, Any]) -> None:
        """Called when the epoch of ``record`` is the best so far, before its checkpoint is taken."""
        ...

    def log_tensorboard(self, writer: Any, record: dict[str, Any]) -> None:
        """What TensorBoard shows of ``record`` beyond its numbers (which the lifecycle plots)."""
        ...


Task = TypeVar("Task", bound=RunTask)


@contextlib.contextmanager
def determinism_kept() -> Iterator[None]:
    """Gives torch's deterministic-algorithms switch back as it was: a run sets it from its own settings."""
    before = torch.are_deterministic_algorithms_enabled()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


class RunLifecycle:
    """Drives a :class:`RunTask` for ``epochs`` epochs in ``folder`` on ``process`` (see the module docstring).

    ``on_event`` gets the run's events (rank 0's lifecycle only: the others pass None). After :meth:`run`,
    :attr:`best_epoch` and :attr:`best_val_acc` say which epoch ``best.pt`` holds: the best validation accuracy,
    or the newest epoch of a run without validation (a record without ``val_acc``).
    """

    def __init__(self, folder: RunFolder, process: Distributed, epochs: int, seed: int, deterministic: bool,
                 on_event: EventHandler | None):
        self.folder, self.process, self.epochs = folder, process, epochs
        self.seed, self.deterministic = seed, deterministic
        self.on_event: EventHandler = on_event or (lambda kind, **info: None)
        self.epoch, self.best_epoch, self.best_val_acc = 0, -1, -1.0

    def status(self, message: str) -> None:
        self.on_event("status", message=message)

    def build(self, make_task: Callable[[], Task]) -> Task:
        """The task ``make_task`` builds (its data, network and optimisers) from the run's seed; then each process
        reseeds by its rank, for its own augmentation and drop-path draws from one network everywhere."""
        seed_everything(self.seed, self.deterministic)
        task = make_task()
        if self.process.active:
            seed_everything(self.seed + RANK_SEED_STRIDE * self.process.rank, self.deterministic)
        self.status(task.describe())
        return task

    def run(self, task: RunTask, state: dict[str, Any] | None) -> None:
        """Runs the epochs left: all of them, or those after the checkpoint ``state`` of a resumed run."""
        from torch.utils.tensorboard import SummaryWriter

        if state is not None:
            self._restore(task, state)
        self.process.on_main(self._start_folder, task)
        writer = SummaryWriter(str(self.folder.path / "tb"), purge_step=self.epoch) if self.process.is_main else None
        try:
            while self.epoch < self.epochs:
                self._run_epoch(task, writer)
        finally:
            if writer is not None:
                writer.close()

    def evaluate(self, model: torch.nn.Module, loader: Iterable[Any], what: str) -> tuple[float, float]:
        """Loss and accuracy of ``model`` over ``loader`` (each process's share, summed); a non-finite loss
        (``what``: ``the validation loss``) stops the run."""
        loss, accuracy = evaluate(model, loader, self.process.device, self.process.sum)
        check_finite(loss, what, self.epoch, None, self.folder.path)
        return loss, accuracy

    def _restore(self, task: RunTask, state: dict[str, Any]) -> None:
        check_world_size(state, self.process, self.folder.path)
        with restoring(self.folder.path, task.restored_what):
            task.load_state(state)
            self.process.restore_rng_states(state)
            self.best_val_acc, self.best_epoch = float(state["best_val_acc"]), state["best_epoch"]
        self.epoch = state["epoch"]
        if self.epoch >= self.epochs:
            self.status(finished_message(self.folder.path, self.epochs))

    def _start_folder(self, task: RunTask) -> None:
        self.folder.keep_history(self.epoch)  # a resumed run drops the records written after its checkpoint
        self.folder.write_config(task.folder_config())

    def _run_epoch(self, task: RunTask, writer: Any) -> None:
        epoch, started = self.epoch, time.perf_counter()
        batches, steps = task.begin_epoch(epoch)
        self.on_event("epoch_start", epoch=epoch, epochs=self.epochs, steps=steps)
        total_loss, correct, seen = 0.0, 0, 0
        pending: list[tuple[torch.Tensor, int]] = []  # (loss and correct of a step, its batch size), unread

        def read(last_step: int) -> None:
            nonlocal total_loss, correct, seen
            values = torch.stack([metrics for metrics, _ in pending]).tolist()  # one host transfer
            for step, ((loss, right), (_, size)) in enumerate(zip(values, pending), last_step - len(pending) + 1):
                check_finite(loss, "the training loss", epoch, step, self.folder.path)
                total_loss += loss * size
                correct += int(right)
                seen += size
                self.on_event("step", epoch=epoch, step=step, steps=steps, loss=loss)
                written(f"step@{epoch}.{step}")
            pending.clear()

        step = 0
        for step, batch in enumerate(batches, 1):
            output = task.step(batch)  # copied: a replayed graph's outputs are overwritten by its next replay
            pending.append((torch.stack([output.loss.detach().double(), output.correct.double()]), output.size))
            if len(pending) >= task.read_every:
                read(step)
        if pending:
            read(step)
        summed_loss, summed_correct, summed_seen = self.process.sum([total_loss, correct, seen])
        record = task.end_epoch(epoch, summed_loss / max(summed_seen, 1), summed_correct / max(summed_seen, 1))
        record["seconds"] = time.perf_counter() - started
        self.epoch = epoch + 1
        improved = "val_acc" not in record or record["val_acc"] > self.best_val_acc
        if improved:
            self.best_val_acc, self.best_epoch = record.get("val_acc", -1.0), epoch
            task.record_best(record)
        checkpoint = {**task.state(), "epoch": self.epoch, "best_epoch": self.best_epoch,
                      "best_val_acc": self.best_val_acc, **self.process.rng_states(),
                      "world_size": self.process.world_size}
        self.process.on_main(self.folder.end_epoch, epoch, record, checkpoint, improved)
        if writer is not None:
            self._log_tensorboard(writer, task, record)
        self.on_event("epoch_end", record=record)

    @staticmethod
    def _log_tensorboard(writer: Any, task: RunTask, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if key not in NOT_LOGGED and isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(key, value, record["epoch"])
        task.log_tensorboard(writer, record)
        writer.flush()
