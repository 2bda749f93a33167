"""How a process of a distributed run ends: as a normal exit begins, without the interpreter's finalization.

A normal exit joins the process's threads, runs its exit handlers (the process group's teardown, logging's flush) and
then finalizes the interpreter. From then on a thread that Python did not start and that reaches for the GIL is ended
with ``pthread_exit``; torch.distributed's gloo threads release the tensors of a finished collective, and with them
the last reference to a Python object, after the process that waited for it has gone on. When that process had
nothing left to do, the thread's unwinding through a C++ destructor made the C++ runtime abort it ("terminate called
without an active exception", SIGABRT, no Python frame): now and then, after a run had finished or had reported its
error, on the error and the success paths alike (CI failed on both). Ending with ``os._exit`` once the exit
handlers have run leaves no finalization for such a thread to meet.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import NoReturn


def exit_process(code: int) -> NoReturn:
    """Ends this process with ``code`` after what a normal exit does first: its other non-daemon threads are joined,
    its exit handlers run and its standard streams are flushed."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to save
            pass
    os._exit(code)


def run_and_exit(work: Callable[[], object]) -> NoReturn:
    """Runs ``work`` and ends the process (:func:`exit_process`) with the code a normal exit would have: 0, a
    ``SystemExit``'s code, or 1 after printing an exception's traceback."""
    try:
        work()
        code = 0
    except SystemExit as exc:
        code = _code(exc.code)
    except BaseException:  # noqa: BLE001 - what the interpreter would print, then the same exit code
        traceback.print_exc()
        code = 1
    exit_process(code)


def _code(status: object) -> int:
    if status is None:
        return 0
    if isinstance(status, int):
        return status
    print(status, file=sys.stderr)  # sys.exit("message"), as the interpreter prints it
    return 1
