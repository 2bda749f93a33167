"""`dmc detect train --launcher pytorch` under torchrun: two CPU processes (gloo) train one detector."""

import os
import subprocess
import sys

import torch


def test_detect_train_under_torchrun_on_two_cpu_processes(detector_config, tmp_path):
    config = detector_config(tmp_path, epochs=2)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "dmc", "detect",
         "train", str(config), "--launcher", "pytorch"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    work = tmp_path / "work"
    logs = list(work.glob("*/*.log"))
    assert len(logs) == 1  # rank 0 alone writes the log
    text = logs[0].read_text()
    assert "Distributed training: True" in text and "GPU number: 2" in text  # mmengine's name for the processes
    checkpoint = torch.load(work / "epoch_2.pth", weights_only=False, map_location="cpu")
    assert checkpoint["meta"]["iter"] == 2  # 8 images, 2 processes of 4 each: one iteration per epoch
