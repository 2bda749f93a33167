"""The training data order of one process: its share of each global batch of a per-epoch permutation."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

MIN_BATCH = 2
"""Fewest training images of a process's batch (search and training): batch norm in training mode needs more than
one value per channel, which one image does not give where a feature map is 1x1 (the auxiliary head's; a chain
network's last stages at small image sizes). An epoch's last, short batch of one image is therefore dropped (that
image trains in the other epochs: the order changes every epoch), rather than only its auxiliary loss skipped:
every step then computes the same loss, and every 1x1 batch norm is covered, not only the auxiliary head's."""


class ShardedBatches(Sampler[list[int]]):
    """A batch sampler over ``n`` items: a fresh permutation per epoch that depends only on (seed, epoch), cut into
    global batches of ``batch_size * world_size``; process ``rank`` takes every ``world_size``-th item of each.

    The union over the processes of step k's batches is step k's batch of a single process with the global
    batch size, so the processes together see the single-process epoch. Every process gets the same number of
    items per step (their mean losses then average to the global batch's): the last, short global batch is cut
    to a multiple of ``world_size``, which drops at most ``world_size - 1`` items per epoch. With ``min_share``,
    a last global batch that would give each process fewer items than that is dropped whole (training: batch norm
    needs more than one value per channel). With ``world_size`` 1 this is a plain shuffled loader's order.
    Resume needs nothing but the epoch (:meth:`set_epoch`).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, min_share: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        self.n, self.batch_size, self.seed, self.min_share = n, batch_size, seed, min_share
        self.rank, self.world_size, self.epoch = rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_sizes(self) -> list[int]:
        step = self.batch_size * self.world_size
        full, rest = divmod(self.n, step)
        last = rest - rest % self.world_size
        return [step] * full + ([last] if last and last >= self.min_share * self.world_size else [])

    def __len__(self) -> int:
        return len(self._global_sizes())

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=generator).tolist()
        start = 0
        for size in self._global_sizes():
            yield order[start: start + size][self.rank:: self.world_size]
            start += size
