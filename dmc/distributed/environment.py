"""Where a process stands in a torch.distributed run, read from its launcher's environment (torchrun or Slurm)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping

DEFAULT_MASTER_PORT = "29500"


def first_slurm_host(nodelist: str) -> str:
    """The first host of a Slurm node list: ``gpu[03-05,09],cpu1`` -> ``gpu03`` (what ``scontrol show hostnames``
    prints first), without calling scontrol."""
    match = re.match(r"([^,\[]+)(?:\[([^\],-]+))?", nodelist.strip())
    if match is None:
        raise ValueError(f"not a Slurm node list: {nodelist!r}")
    prefix, first = match.groups()
    return prefix + (first or "")


def _slurm_master(env: Mapping[str, str]) -> str:
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST", "")
    if shutil.which("scontrol"):
        shown = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True)
        if shown.returncode == 0 and shown.stdout.split():
            return shown.stdout.split()[0]
    return first_slurm_host(nodelist)


def launch_environment(env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The torchrun variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) of this process, or None
    when it runs alone.

    torchrun (and any launcher that sets them) wins. Otherwise a task of a Slurm job step with several tasks
    (``srun``: one task per process) maps SLURM_PROCID, SLURM_STEP_NUM_TASKS and SLURM_LOCALID; its master is the
    step's first node unless MASTER_ADDR is set, on MASTER_PORT or 29500. A batch script itself (no step of
    several tasks) runs alone.
    """
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        found = {key: env[key] for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if key in env}
        found["LOCAL_RANK"] = env.get("LOCAL_RANK", env["RANK"])
        return found if int(env["WORLD_SIZE"]) > 1 else None
    tasks = int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1)
    if tasks > 1 and "SLURM_PROCID" in env:
        return {"RANK": env["SLURM_PROCID"], "WORLD_SIZE": str(tasks), "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
                "MASTER_ADDR": env.get("MASTER_ADDR") or _slurm_master(env),
                "MASTER_PORT": env.get("MASTER_PORT", DEFAULT_MASTER_PORT)}
    return None


def is_main_process() -> bool:
    """True alone and on rank 0 of a distributed run: the process that reports."""
    env = launch_environment()
    return env is None or env["RANK"] == "0"
