"""A rich progress display fed by the library's ``on_event(kind, **info)`` callbacks."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from dmc.api import is_main_process


@contextmanager
def epoch_progress(console: Console | None = None, label: str = "search"):
    """Yields an event handler that shows epochs and steps and prints a line per finished epoch (on the process
    that reports: alone, or rank 0 of a distributed run; the others show nothing)."""
    if not is_main_process():
        yield lambda kind, **info: None
        return
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console or Console(), transient=False)
    tasks: dict[str, TaskID] = {}

    def on_event(kind: str, **info) -> None:
        if kind == "epoch_start":
            if "epochs" not in tasks:
                tasks["epochs"] = progress.add_task(label, total=info["epochs"], completed=info["epoch"], info="")
            else:  # the same run's next epoch, or the next run of a grid (seeds, stages, ablation)
                progress.update(tasks["epochs"], total=info["epochs"], completed=info["epoch"])
            if "steps" in tasks:
                progress.reset(tasks["steps"], total=info["steps"], description=f"epoch {info['epoch']}")
            else:
                tasks["steps"] = progress.add_task(f"epoch {info['epoch']}", total=info["steps"], info="")
        elif kind == "step":
            progress.update(tasks["steps"], completed=info["step"], info=f"loss {info['loss']:.3f}")
        elif kind == "status":
            progress.console.print(info["message"], soft_wrap=True)
        elif kind == "epoch_end":
            r = info["record"]
            summary = " ".join(f"{k} {r[k]:.3f}" for k in ("beta", "train_acc", "val_acc", "test_acc") if k in r)
            progress.update(tasks["epochs"], advance=1, info=summary)
            progress.console.print(f"epoch {r['epoch']}: {summary}")

    with progress:
        yield on_event
