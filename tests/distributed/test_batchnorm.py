"""SyncBatchNorm2d on two gloo processes equals BatchNorm2d on the whole batch: outputs, gradients (also
second-order, which the Hessian tracking needs), running statistics."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from dmc.distributed import SyncBatchNorm2d, convert_sync_batchnorm

WORLD = 2


def _inputs(dtype: torch.dtype = torch.float32):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 5, 5, generator=generator) * 2 + 3  # a large mean: stable statistics matter
    target = torch.randn(8, 3, 5, 5, generator=generator)
    return x.to(dtype), target.to(dtype)


def _losses(bn: nn.Module, x: torch.Tensor, target: torch.Tensor):
    """First- and second-order quantities of ``bn`` on ``x``: output, dL/dx, dL/dweight and d||dL/dx||^2/dweight."""
    x = x.clone().requires_grad_(True)
    y = bn(x)
    loss = (y * target).sum() + (y ** 3).sum() * 0.01
    grad_x, grad_w = torch.autograd.grad(loss, [x, bn.weight], create_graph=True)
    second = torch.autograd.grad(grad_x.square().sum(), bn.weight)[0]
    return y.detach(), grad_x.detach(), grad_w.detach(), second


def _reference(dtype: torch.dtype = torch.float32):
    torch.manual_seed(1)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn.to(dtype)


def _worker(rank: int, store_path: str, results, dtype: torch.dtype) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        x, target = _inputs(dtype)
        bn = convert_sync_batchnorm(_reference(dtype))
        assert isinstance(bn, SyncBatchNorm2d)
        share = slice(rank * 4, rank * 4 + 4)
        y, grad_x, grad_w, second = _losses(bn, x[share], target[share])
        for t in (grad_w, second):  # parameter gradients add up over the processes (DDP then averages them)
            dist.all_reduce(t)
        results[rank] = {"y": y, "grad_x": grad_x, "grad_w": grad_w, "second": second,
                         "running_mean": bn.running_mean.clone(), "running_var": bn.running_var.clone()}
    finally:
        dist.destroy_process_group()


# float64: the statistics too are computed in float64, as BatchNorm2d computes them
@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1.0), (torch.float64, 1e-8)])
def test_two_processes_equal_one_on_the_whole_batch(tmp_path, dtype, tolerance):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(str(tmp_path / "store"), results, dtype), nprocs=WORLD)
        results = dict(results)
    x, target = _inputs(dtype)
    bn = _reference(dtype)
    y, grad_x, grad_w, second = _losses(bn, x, target)

    def close(actual, expected, rtol, atol):
        torch.testing.assert_close(actual, expected, rtol=rtol * tolerance, atol=atol * tolerance)

    both = {key: torch.cat([results[0][key], results[1][key]]) for key in ("y", "grad_x")}
    close(both["y"], y, 1e-5, 1e-5)
    close(both["grad_x"], grad_x, 1e-4, 1e-5)
    for rank in range(WORLD):
        close(results[rank]["grad_w"], grad_w, 1e-4, 1e-5)
        close(results[rank]["second"], second, 1e-4, 1e-4)
        close(results[rank]["running_mean"], bn.running_mean, 1.3e-6, 1e-5)
        close(results[rank]["running_var"], bn.running_var, 1.3e-6, 1e-5)


def test_alone_or_in_eval_it_is_batchnorm():
    x, _ = _inputs()
    reference, synced = _reference(), convert_sync_batchnorm(_reference())
    torch.testing.assert_close(synced(x), reference(x))
    reference.eval(), synced.eval()
    torch.testing.assert_close(synced(x), reference(x))


def test_conversion_keeps_state_and_keys():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, affine=False), nn.Sequential(nn.BatchNorm2d(4)))
    net[2][0].running_mean.fill_(0.5)
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    convert_sync_batchnorm(net)
    assert isinstance(net[1], SyncBatchNorm2d) and isinstance(net[2][0], SyncBatchNorm2d)
    assert not net[1].affine and not net[2][0].training
    after = net.state_dict()
    assert after.keys() == before.keys()
    for key in before:
        assert torch.equal(after[key], before[key])

