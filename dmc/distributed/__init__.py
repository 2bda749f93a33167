"""Search and training on several processes and machines with torch.distributed (torchrun, Slurm, ``--nproc``).

Semantics: the global batch is the per-process batch times the number of processes; each process reads a
disjoint share of every global batch (:class:`ShardedBatches`), so the processes together see the single-process
epoch; weight gradients are averaged by DDP, alpha gradients by the architecture step; rank 0 alone writes the
run folder.
"""

from dmc.distributed.batches import MIN_BATCH, ShardedBatches
from dmc.distributed.batchnorm import SyncBatchNorm2d, convert_sync_batchnorm
from dmc.distributed.context import SINGLE, Distributed, LostPeers, PeerFailed, distributed, join
from dmc.distributed.environment import is_main_process, launch_environment
from dmc.distributed.launch import ProcessesFailed, launch_local
from dmc.distributed.process_exit import run_and_exit

__all__ = ["MIN_BATCH", "SINGLE", "Distributed", "LostPeers", "PeerFailed", "ProcessesFailed", "ShardedBatches",
           "SyncBatchNorm2d", "convert_sync_batchnorm", "distributed", "is_main_process", "join", "launch_environment",
           "launch_local", "run_and_exit"]
