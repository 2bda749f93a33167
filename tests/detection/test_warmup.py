"""The generated warm-up: --warmup-iters N gives N iterations at a reduced lr, then the full lr, for every N >= 0."""

import pytest
import torch
from mmengine.registry import PARAM_SCHEDULERS

from dmc.detection.config import DetectionConfig, retinanet_config


def _lrs(warmup_iters: int, steps: int = 5) -> list[float]:
    config = retinanet_config("DARTS_V2", DetectionConfig(channels=4, layers=3, lr=0.01, warmup_iters=warmup_iters))
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer)) for s in config["param_scheduler"]
                  if not s["by_epoch"]]
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        for scheduler in schedulers:
            scheduler.step()
    return lrs


@pytest.mark.parametrize("warmup_iters", [0, 1, 3])
def test_warm_up_reaches_the_full_lr_after_its_iterations(warmup_iters):
    lrs = _lrs(warmup_iters)
    assert all(lr < 0.01 * 0.999 for lr in lrs[:warmup_iters])
    assert lrs[warmup_iters:] == pytest.approx([0.01] * (5 - warmup_iters))
    if warmup_iters:
        assert lrs[0] == pytest.approx(1e-5)  # mmdet's start factor 0.001
