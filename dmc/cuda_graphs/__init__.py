"""Training steps captured as CUDA graphs: capturable optimisers, the step runner, the ``--cuda-graphs`` choice."""

from dmc.cuda_graphs.choice import (
    CUDA_GRAPH_CHOICES,
    READ_EVERY,
    check_cuda_graphs,
    read_interval,
    step_mode,
    step_state,
)
from dmc.cuda_graphs.optimizers import CapturableAdam, CapturableOptimizer, CapturableSGD
from dmc.cuda_graphs.step_graphs import CHECK_TOLERANCE, STEP_MODES, WARMUP_STEPS, StepGraphs

__all__ = ["CHECK_TOLERANCE", "CUDA_GRAPH_CHOICES", "READ_EVERY", "STEP_MODES", "WARMUP_STEPS", "CapturableAdam",
           "CapturableOptimizer", "CapturableSGD", "StepGraphs", "check_cuda_graphs", "read_interval", "step_mode",
           "step_state"]
