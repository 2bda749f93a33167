"""``launch_local`` (what ``--nproc`` runs on): its processes form one gloo run and end through
``dmc.distributed.process_exit``; a failed run reports the process that caused it."""

import os
import runpy
import signal
import subprocess
import sys
import textwrap

import pytest
from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

from dmc.distributed import ProcessesFailed, launch_local
from dmc.distributed.launch import reported_failure

ENV = {"OMP_NUM_THREADS": "1"}


def failure(exitcode: int) -> ProcessFailure:
    return ProcessFailure(local_rank=0, pid=1, exitcode=exitcode, error_file="")


@pytest.mark.parametrize(("codes", "reported"), [
    ({0: -signal.SIGTERM, 1: -signal.SIGKILL}, 1),  # the agent stopped 0 after 1 was killed
    ({0: 1, 1: -signal.SIGKILL}, 1),  # 0 lost its peer (a quiet error) because 1 was killed
    ({0: -signal.SIGTERM, 1: 2}, 1),  # 1 said why; the agent stopped 0
    ({0: 2, 1: 2}, 0),  # every process met the same error: the first, by rank
    ({0: -signal.SIGTERM, 1: -signal.SIGTERM}, 0),  # stopped from outside
])
def test_the_reported_failure_is_the_process_that_caused_the_others(codes, reported):
    assert reported_failure({rank: failure(code) for rank, code in codes.items()})[0] == reported


def script(tmp_path, body: str) -> str:
    path = tmp_path / "work.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def launch(monkeypatch, path: str) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    launch_local(2, runpy.run_path, path)


def test_processes_join_one_run_and_end_after_their_threads_and_exit_handlers(tmp_path, monkeypatch, capfd):
    launch(monkeypatch, script(tmp_path, f"""
        import atexit, pathlib, threading, time
        import torch, torch.distributed as dist
        from dmc.distributed import join

        process = join()
        total = torch.tensor([process.rank + 1.0])
        dist.all_reduce(total)
        out = pathlib.Path({str(tmp_path)!r})
        (out / f"rank{{process.rank}}").write_text(f"{{process.world_size}} {{total.item():g}}")
        atexit.register(lambda: (out / f"atexit{{process.rank}}").write_text(str(dist.is_initialized())))
        threading.Thread(target=lambda: (time.sleep(0.5), (out / f"thread{{process.rank}}").write_text("done"))).start()
        print(f"rank {{process.rank}}: buffered, no newline", end="")
    """))
    printed = capfd.readouterr().out
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}").read_text() == "2 3"
        assert (tmp_path / f"thread{rank}").read_text() == "done"
        # the group's own handler (registered first, so it runs last) had not torn it down yet
        assert (tmp_path / f"atexit{rank}").read_text() == "True"
        assert f"rank {rank}: buffered, no newline" in printed


def test_an_error_exit_is_passed_on_quietly(tmp_path, monkeypatch):
    with pytest.raises(ProcessesFailed) as raised:
        launch(monkeypatch, script(tmp_path, """
            import os, sys
            sys.exit(3 if os.environ["RANK"] == "1" else 0)
        """))
    assert raised.value.exit_code == 3 and raised.value.quiet


def test_rank_0_reports_another_processes_error_for_python_and_for_the_command_line(tmp_path, monkeypatch):
    """An error that names settings (fields in Python, flags on the command line) keeps both texts on its way from
    the process that met it to rank 0, which reports it."""
    launch(monkeypatch, script(tmp_path, f"""
        import pathlib
        from dmc.distributed import join
        from dmc.errors import DmcError, SettingError

        process = join()

        def work():
            if process.rank == 1:
                raise SettingError("{{batch_size}} 3 does not fit this GPU", "lower {{batch_size}}")

        try:
            process.everywhere(work)
        except DmcError as error:
            report = f"{{type(error).__name__}} {{error.exit_code}}: {{error}} | {{error.cli_text()}}"
            pathlib.Path({str(tmp_path)!r}, f"rank{{process.rank}}").write_text(report)
    """))
    assert (tmp_path / "rank0").read_text() == ("PeerError 2: batch_size 3 does not fit this GPU (hint: lower "
                                                "batch_size) | --batch-size 3 does not fit this GPU (hint: lower "
                                                "--batch-size)")
    assert (tmp_path / "rank1").read_text().startswith("PeerFailed 2: ")  # quiet: rank 0 reports it


def test_a_process_killed_by_a_signal_is_named_not_the_one_the_agent_stopped(tmp_path, monkeypatch):
    with pytest.raises(ProcessesFailed) as raised:
        launch(monkeypatch, script(tmp_path, """
            import os, signal, time
            if os.environ["RANK"] == "1":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)
        """))
    assert str(raised.value).startswith("process 1 of 2 was killed by SIGKILL")
    assert not raised.value.quiet


@pytest.mark.parametrize(("code", "exit_code", "stderr"),
                         [("None", 0, ""), ("4", 4, ""), ("'bad input'", 1, "bad input")])
def test_run_and_exit_ends_with_the_code_of_a_normal_exit(code, exit_code, stderr):
    result = subprocess.run([sys.executable, "-c", "import sys\nfrom dmc.distributed.process_exit import run_and_exit\n"
                             f"run_and_exit(lambda: sys.exit({code}))"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, **ENV})
    assert (result.returncode, result.stderr.strip()) == (exit_code, stderr)
