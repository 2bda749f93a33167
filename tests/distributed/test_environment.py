"""Where a process stands: torchrun's variables, or a Slurm step's mapped onto them."""

import pytest

from dmc.distributed import launch_environment
from dmc.distributed.environment import first_slurm_host


def test_alone_without_a_launcher():
    assert launch_environment({}) is None
    assert launch_environment({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}) is None


def test_torchrun_variables_win():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "n1", "MASTER_PORT": "1234",
           "SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "8"}
    assert launch_environment(env) == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "n1",
                                       "MASTER_PORT": "1234"}


def test_a_slurm_step_of_several_tasks():
    env = {"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "1",
           "SLURM_STEP_NODELIST": "gpu[03-05,09],cpu1", "SLURM_NTASKS": "8"}
    found = launch_environment(env)
    assert found == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu03",
                     "MASTER_PORT": "29500"}
    assert launch_environment({**env, "MASTER_ADDR": "head", "MASTER_PORT": "4000"})["MASTER_ADDR"] == "head"


def test_a_batch_script_itself_runs_alone():
    assert launch_environment({"SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_JOB_NODELIST": "n[1-2]"}) is None
    assert launch_environment({"SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1"}) is None


@pytest.mark.parametrize("nodelist, host", [("node7", "node7"), ("gpu[03-05,09]", "gpu03"), ("a1,b2", "a1"),
                                            ("rack-[12,14]", "rack-12"), ("n[001-004]", "n001")])
def test_first_slurm_host(nodelist, host):
    assert first_slurm_host(nodelist) == host
