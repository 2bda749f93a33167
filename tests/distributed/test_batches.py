"""ShardedBatches: the processes' shares of each step are the single-process step's batch."""

import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

from dmc.distributed import ShardedBatches


@pytest.mark.parametrize("n, batch", [(10, 3), (17, 4), (5, 8), (16, 4)])
def test_one_process_is_a_shuffled_loader_of_the_seeded_permutation(n, batch):
    sampler = ShardedBatches(n, batch, seed=3)
    sampler.set_epoch(2)
    permutation = torch.randperm(n, generator=torch.Generator().manual_seed(3 * 100_003 + 2)).tolist()
    expected = [permutation[i: i + batch] for i in range(0, n, batch)]
    assert list(sampler) == expected
    assert len(sampler) == len(DataLoader(range(n), batch_size=batch, sampler=RandomSampler(range(n))))


@pytest.mark.parametrize("n, batch, world", [(16, 4, 2), (17, 2, 2), (23, 3, 4), (7, 1, 3)])
def test_shares_are_disjoint_equal_sized_and_union_to_the_global_batch(n, batch, world):
    single = ShardedBatches(n, batch * world, seed=5)
    shards = [ShardedBatches(n, batch, seed=5, rank=r, world_size=world) for r in range(world)]
    for sampler in [single, *shards]:
        sampler.set_epoch(1)
    steps = list(zip(*[list(s) for s in shards]))
    assert all(len(s) == len(steps) for s in shards)
    for whole, parts in zip(single, steps):
        assert len({len(p) for p in parts}) == 1  # every process gets as many items
        union = sorted(i for p in parts for i in p)
        assert len(set(union)) == len(union)
        assert set(union) <= set(whole)
        assert len(whole) - len(union) < world  # only the last, short batch is cut to a multiple of world
        if len(whole) == batch * world:
            assert sorted(whole) == union
    seen = sum(len(p) for parts in steps for p in parts)
    assert n - seen == (n % (batch * world)) % world


def test_the_order_changes_with_the_epoch_only():
    a, b = ShardedBatches(20, 4, seed=1), ShardedBatches(20, 4, seed=1)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)


def test_rank_outside_the_world_is_refused():
    with pytest.raises(ValueError):
        ShardedBatches(10, 2, seed=0, rank=2, world_size=2)


@pytest.mark.parametrize("n, batch, world, steps", [(29, 7, 1, 4), (30, 7, 1, 5), (27, 4, 3, 2), (30, 4, 3, 3)])
def test_min_share_drops_a_last_batch_too_small_for_each_process(n, batch, world, steps):
    """Training's samplers (min_share 2): a last global batch that would give a process one item is dropped whole."""
    shards = [ShardedBatches(n, batch, seed=0, rank=r, world_size=world, min_share=2) for r in range(world)]
    assert all(len(s) == steps == len(list(s)) for s in shards)
    assert min(len(batch) for s in shards for batch in s) >= 2
