"""``python -m dmc.distributed.worker FILE``: one process of a run that :func:`dmc.distributed.launch.launch_local`
started. FILE holds the function and arguments to run, pickled by the launcher into its own private folder (never a
user's file); the process ends as every process of a distributed run does (:mod:`dmc.distributed.process_exit`)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from dmc.distributed.process_exit import run_and_exit


def main(path: str) -> None:
    target, args = pickle.loads(Path(path).read_bytes())
    run_and_exit(lambda: target(*args))


if __name__ == "__main__":
    main(sys.argv[1])
