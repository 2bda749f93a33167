"""`dmc search` and `dmc train` in real processes, SIGKILLed right after each checkpoint write and at a random
instant, then continued: the result equals the uninterrupted run's (issue 12, items 1 and 12)."""

import os
import random
import subprocess
import sys
import time

import pytest

from dmc.runfolder import KILL_AFTER_ENV

CHECKPOINT_WRITES = ["best.pt@0", "last.pt@0", "best.pt@1", "last.pt@1"]


def _flags(settings):
    flags = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        flags += [flag] if value is True else [flag, str(value)]
    return flags


def _start(args, kill_after=None):
    # one thread: on a busy machine OpenMP's spinning threads make these tiny runs 10x slower
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DMC_DEBUG": "1"}
    env.pop(KILL_AFTER_ENV, None)
    if kill_after is not None:
        env[KILL_AFTER_ENV] = kill_after
    return subprocess.Popen([sys.executable, "-m", "dmc.cli.main", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _run(args, kill_after=None):
    process = _start(args, kill_after)
    output, _ = process.communicate(timeout=600)
    return process.returncode, output


class _Job:
    """One command line into ``run``, continued with --resume once the folder holds a run."""

    def __init__(self, command, args, run):
        self.command, self.args, self.run = command, args, run

    def next_args(self):
        if (self.run / "config.json").exists():
            return [self.command, "--resume", str(self.run)]
        return [self.command, *self.args, "--out", str(self.run)]

    def kill_after(self, label):
        code, output = _run(self.next_args(), label)
        assert code == -9, f"not killed after {label} (exit {code}):\n{output}"

    def kill_at_random(self, rng, span):
        """SIGKILL at a random instant of the run proper: after the folder is claimed, within ``span`` s."""
        process = _start(self.next_args())
        while not self.run.exists() and process.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, span))
        process.kill()
        process.communicate(timeout=600)

    def finish(self):
        code, output = _run(self.next_args())
        assert code == 0, output


@pytest.mark.parametrize("command", ["search", "train"])
def test_sigkill_after_each_checkpoint_write_and_at_random(command, tmp_path, search_settings, train_settings,
                                                           assert_same_run):
    if command == "search":
        args, final = ["tiny", *_flags({k: v for k, v in search_settings.items() if k != "space"})], "genotype.json"
    else:
        args, final = ["DARTS_V2", *_flags(train_settings)], "result.json"
    straight = _Job(command, args, tmp_path / "straight")
    started = time.perf_counter()
    straight.finish()
    span = time.perf_counter() - started

    chain = _Job(command, args, tmp_path / "chain")  # killed after each write in turn, resumed each time
    for label in CHECKPOINT_WRITES:
        chain.kill_after(label)
    chain.finish()
    assert_same_run(tmp_path / "straight", chain.run, final)

    seed = random.randrange(1 << 30)
    print(f"random kill seed {seed}")  # shown when the test fails: rerun with it to reproduce
    rng = random.Random(seed)
    randomly = _Job(command, args, tmp_path / "random")
    randomly.kill_at_random(rng, span / 2)
    randomly.finish()
    assert_same_run(tmp_path / "straight", randomly.run, final)
