"""Search and training on several processes and machines with torch.distributed (torchrun, Slurm, ``--nproc``).

Semantics: the global batch is the per-process batch times the number of processes; each process reads a
disjoint share of every global batch (:class:`ShardedBatches`), so the processes together see the single-process
epoch; weight gradients are averaged by DDP, alpha gradients by the architecture step; rank 0 alone writes the
run folder.
"""

from dmc.distributed.batches import ShardedBatches
from dmc.distributed.batchnorm import SyncBatchNorm2d, convert_sync_batchnorm
from dmc.distributed.context import SINGLE, Distributed, LostPeers, PeerFailed, distributed
from dmc.distributed.environment import launch_environment

__all__ = ["SINGLE", "Distributed", "LostPeers", "PeerFailed", "ShardedBatches", "SyncBatchNorm2d",
           "convert_sync_batchnorm", "distributed", "launch_environment"]
