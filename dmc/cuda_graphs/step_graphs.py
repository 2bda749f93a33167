"""A training step's device work run eagerly, or captured as CUDA graphs and replayed.

A step is split in two. Its host side (the task's ``step``: schedules, :meth:`CapturableOptimizer.sync_lr`,
choosing the step's *structure*) runs in Python every time. Its device side, ``core(*inputs) -> outputs``, reads
only tensors: the inputs, the parameters, optimiser states, and device scalars (learning rates, beta). That core is
what :class:`StepGraphs` runs, in one of three modes:

- ``eager``: ``core`` on the batch, moved to the device;
- ``static``: the captured form run eagerly, on any device: the batch copied into static input buffers, ``core``
  run on them; what a CUDA graph replays, checkable without one;
- ``graphs``: per structure and batch shape, ``warmup`` steps run eagerly on a side stream (cuDNN's autotuning,
  optimiser states, lazy initialisation), then the step is captured once and replayed from then on. The first
  capture of each structure is checked: the replayed step and the same step run eagerly from the same state must
  agree (:data:`CHECK_TOLERANCE`); a capture that fails or disagrees falls back to eager steps with one status
  line.

A new structure (the architecture steps starting after a warm-up, beta reaching 0, a new skip-dropout or drop-path
rate) drops the graphs of the old one and captures anew; a batch of another shape (an epoch's short last batch)
gets a graph of its own, so an epoch sees as many samples as an eager one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import torch

STEP_MODES = ("eager", "static", "graphs")
WARMUP_STEPS = 3
"""Eager steps of a structure and batch shape before it is captured (PyTorch's whole-network example uses 3)."""
CHECK_TOLERANCE = 1e-4
"""Largest difference between the captured and the eager step's state (parameters, buffers, optimiser states),
relative to the largest value of each tensor, that the capture check accepts."""

Core = Callable[..., tuple[torch.Tensor, ...]]


@dataclass
class _Graph:
    warm: int = 0
    graph: torch.cuda.CUDAGraph | None = None
    inputs: tuple[torch.Tensor, ...] = ()
    outputs: tuple[torch.Tensor, ...] = ()


@dataclass
class StepGraphs:
    """Runs ``core`` in ``mode`` (see the module docstring) on ``device``.

    ``state`` lists the tensors a step changes in place (parameters, buffers, optimiser states and device scalars),
    for the capture check; ``status`` gets the one line of a fallback.
    """

    core: Core
    mode: str
    device: torch.device
    state: Callable[[], list[torch.Tensor]] = list
    status: Callable[[str], None] = lambda message: None
    warmup: int = WARMUP_STEPS
    _graphs: dict[Hashable, _Graph] = field(default_factory=dict)
    _structure: Hashable = None

    def __post_init__(self) -> None:
        if self.mode not in STEP_MODES:
            raise ValueError(f"step mode {self.mode!r} is not one of {', '.join(STEP_MODES)}")
        if self.mode == "graphs" and self.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {self.device}")

    def __call__(self, structure: Hashable, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The outputs of one step of ``structure`` on ``inputs``. Under ``static`` and ``graphs`` they are static
        tensors that the next step of the same shape overwrites: use them before then."""
        if self.mode == "eager":
            return self.core(*(x.to(self.device, non_blocking=True) for x in inputs))
        if structure != self._structure:
            self._graphs.clear()  # a structure does not come back (see the module docstring): free its pools
            self._structure = structure
        entry = self._graphs.setdefault(tuple(tuple(x.shape) for x in inputs), _Graph())
        if not entry.inputs:
            entry.inputs = tuple(torch.empty_like(x, device=self.device) for x in inputs)
        for static, x in zip(entry.inputs, inputs):
            static.copy_(x, non_blocking=True)
        if self.mode == "static":
            return self.core(*entry.inputs)
        if entry.graph is not None:
            entry.graph.replay()
            return entry.outputs
        if entry.warm < self.warmup:
            entry.warm += 1
            return self._on_side_stream(entry.inputs)
        return self._capture(entry)

    def _on_side_stream(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            outputs = self.core(*inputs)
        torch.cuda.current_stream(self.device).wait_stream(side)
        return outputs

    def _capture(self, entry: _Graph) -> tuple[torch.Tensor, ...]:
        first = not any(e.graph is not None for e in self._graphs.values())
        before = [t.clone() for t in self.state()] if first else []
        rng = torch.cuda.get_rng_state(self.device)
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: the data loader's pin-memory thread may allocate pinned memory meanwhile
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                outputs = self.core(*entry.inputs)
        except Exception as error:  # the capture ran nothing: the state is as before
            self._fall_back(f"capturing the step failed ({type(error).__name__}: {error})")
            torch.cuda.synchronize(self.device)
            return self.core(*entry.inputs)
        graph.replay()
        entry.graph, entry.outputs = graph, outputs
        if not first:
            return outputs
        problem, eager_outputs = self._check(before, rng, entry, outputs)
        if problem is not None:
            self._fall_back(problem)
        return eager_outputs

    def _check(self, before: list[torch.Tensor], rng: torch.Tensor, entry: _Graph,
               captured: tuple[torch.Tensor, ...]) -> tuple[str | None, tuple[torch.Tensor, ...]]:
        """The step run eagerly again from the state before the replay (which the run keeps), and None if the
        replay computed the same within :data:`CHECK_TOLERANCE`, else what differs."""
        replayed = [t.clone() for t in self.state()] + [t.clone() for t in captured]
        with torch.no_grad():
            for live, saved in zip(self.state(), before):
                live.copy_(saved)
        torch.cuda.set_rng_state(rng, self.device)
        eager_outputs = self.core(*entry.inputs)
        eager = self.state()
        worst = 0.0
        for a, b in zip(replayed, [*eager, *eager_outputs]):
            if a.is_floating_point():
                scale = b.abs().max().clamp_min(1e-12)
                worst = max(worst, float(((a - b).abs().max() / scale).item()))
            elif not torch.equal(a, b):
                worst = float("inf")
        if worst <= CHECK_TOLERANCE:
            return None, eager_outputs
        return f"the captured step differs from the eager step (relative difference {worst:.2e})", eager_outputs

    def _fall_back(self, problem: str) -> None:
        self.status(f"CUDA graphs off: {problem}; running the steps eagerly")
        self.mode = "eager"
        self._graphs.clear()
