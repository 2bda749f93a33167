"""The capturable optimisers compute what torch's eager SGD and Adam (and dmc's RMSpropTF before it read a device
learning rate) compute, bit for bit, under a scheduler that changes the learning rate; their state_dicts are
torch's, so checkpoints of either load into the other and continue identically."""

from __future__ import annotations

import pytest
import torch

from dmc.cuda_graphs import CapturableAdam, CapturableSGD

SHAPES = [(16, 8, 3, 3), (100,), (14, 8)]


def parameters(dtype=torch.float32) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_() for s in SHAPES]


def train(optimizer, params, steps: range, capturable: bool, schedule: dict | None = None) -> dict:
    """Steps ``steps`` under a cosine schedule (continued from ``schedule``, a scheduler state); its state after."""
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 5, eta_min=1e-3)
    if schedule is not None:
        scheduler.load_state_dict(schedule)
    for k in steps:
        g = torch.Generator().manual_seed(100 + k)
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        if capturable:
            optimizer.sync_lr()
        optimizer.step()
        scheduler.step()
    return scheduler.state_dict()


PAIRS = {
    "sgd": (lambda ps: torch.optim.SGD(ps, 0.025, momentum=0.9, weight_decay=3e-4),
            lambda ps: CapturableSGD(ps, 0.025, momentum=0.9, weight_decay=3e-4)),
    "sgd-no-momentum": (lambda ps: torch.optim.SGD(ps, 0.1), lambda ps: CapturableSGD(ps, 0.1)),
    "adam": (lambda ps: torch.optim.Adam(ps, 3e-4, betas=(0.5, 0.999), weight_decay=1e-3),
             lambda ps: CapturableAdam(ps, 3e-4, betas=(0.5, 0.999), weight_decay=1e-3)),
    "adam-large-lr": (lambda ps: torch.optim.Adam(ps, 0.05), lambda ps: CapturableAdam(ps, 0.05)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(PAIRS))
def test_capturable_optimizers_equal_torch_eager_ones_to_the_bit(name, dtype):
    make_torch, make_capturable = PAIRS[name]
    theirs, mine = parameters(dtype), parameters(dtype)
    torch_opt, capturable = make_torch(theirs), make_capturable(mine)
    train(torch_opt, theirs, range(8), capturable=False)
    train(capturable, mine, range(8), capturable=True)
    for a, b in zip(theirs, mine):
        assert torch.equal(a, b)
    for p, q in zip(theirs, mine):
        for key, value in torch_opt.state[p].items():
            assert torch.equal(value, capturable.state[q][key]), key


@pytest.mark.parametrize("name", list(PAIRS))
def test_a_checkpoint_of_torchs_optimizer_resumes_in_the_capturable_one(name):
    make_torch, make_capturable = PAIRS[name]
    straight = parameters()
    train(make_torch(straight), straight, range(6), capturable=False)

    resumed = parameters()
    first = make_torch(resumed)
    schedule = train(first, resumed, range(3), capturable=False)
    second = make_capturable(resumed)
    second.load_state_dict(first.state_dict())
    train(second, resumed, range(3, 6), capturable=True, schedule=schedule)
    for a, b in zip(straight, resumed):
        assert torch.equal(a, b)


def test_an_eager_step_syncs_the_device_learning_rate_from_its_group():
    params = parameters()
    optimizer = CapturableSGD(params, 0.1)
    params[0].grad = torch.ones_like(params[0])
    optimizer.param_groups[0]["lr"] = 0.5  # as a scheduler sets it, with no sync_lr(): an eager step still sees it
    before = params[0].detach().clone()
    optimizer.step()
    assert float(optimizer.device_lr()) == 0.5
    assert torch.equal(params[0].detach(), before - 0.5 * torch.ones_like(before))


def test_rmsprop_tf_reads_its_learning_rate_from_the_device():
    from dmc.train.optim import RMSpropTF

    params = parameters()
    optimizer = RMSpropTF([{"params": params[:2], "weight_decay": 1e-5}, {"params": params[2:], "weight_decay": 0}],
                          0.016)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.sync_lr()
    assert [float(optimizer.device_lr(i)) for i in range(2)] == pytest.approx([0.016, 0.016])
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in params)
