"""Recomputing mixed edges in backward: each edge keeps only its input, not its candidates' activations.

An edge's forward runs without autograd. Its backward runs the edge again with autograd, on detached copies of its
input, weights and parameters, and differentiates that copy with respect to what the surrounding backward pass asks
for (``torch._C._will_engine_execute_node`` on each argument's gradient node): the architecture step
(``backward(inputs=alphas)``) gets no weight gradients from a recomputation, as it gets none without one. The
gradients go back to the surrounding pass, which accumulates (or returns) them once: parameter hooks fire once, as
without recomputation.

This replaces ``torch.utils.checkpoint``'s non-reentrant checkpoint, which gave the same gradients through a Python
hook on every saved tensor: on 2 CPU cores that bookkeeping cost as much as the recomputed forward
(``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.modules.batchnorm import _BatchNorm


def recomputed(edge: nn.Module, x: torch.Tensor, weights: torch.Tensor, beta: torch.Tensor | None) -> torch.Tensor:
    """``edge(x, weights, beta)``, its activations recomputed in backward (double backward is not supported)."""
    return _RecomputedEdge.apply(edge, x, weights, beta, *_members(edge).parameters)


@dataclass(frozen=True)
class _Members:
    parameters: tuple[nn.Parameter, ...]
    slots: tuple[tuple[nn.Module, str, int], ...]
    """(module, attribute name, index into ``parameters``) for every place a parameter is registered."""
    norms: tuple[_BatchNorm, ...]


def _members(edge: nn.Module) -> _Members:
    """``edge``'s parameters and batch norms, looked up at its first recomputation: walking its modules on every
    call cost more than the small edges' arithmetic. Modules keep their parameters' identity under ``Module.to``."""
    members = edge.__dict__.get("_recompute_members")
    if members is None:
        parameters = tuple(edge.parameters())
        index = {id(p): k for k, p in enumerate(parameters)}
        slots = tuple((module, name, index[id(p)]) for module in edge.modules()
                      for name, p in module._parameters.items() if p is not None)
        members = _Members(parameters, slots, tuple(m for m in edge.modules() if isinstance(m, _BatchNorm)))
        edge.__dict__["_recompute_members"] = members
    return members


class _RecomputedEdge(torch.autograd.Function):
    @staticmethod
    def forward(ctx, edge: nn.Module, x: torch.Tensor, weights: torch.Tensor, beta: torch.Tensor | None,
                *parameters: torch.Tensor) -> torch.Tensor:
        ctx.edge = edge
        ctx.rng = _rng_state(x.device) if _is_random(edge) else None
        ctx.save_for_backward(x, weights, beta)
        return edge(x, weights, beta)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weights, beta = ctx.saved_tensors
        members = _members(ctx.edge)
        nodes = [node for node, _ in ctx.next_functions]  # one per tensor argument: beta's only when it is given
        if beta is None:
            nodes.insert(2, None)
        wanted = list(map(_wanted, nodes))
        del wanted[2]  # beta: a schedule, never trained
        copies = [t.detach().requires_grad_(want) for t, want in zip((x, weights, *members.parameters), wanted)]
        with (torch.enable_grad(), _parameters_replaced(members, copies[2:]), _statistics_frozen(members.norms),
              _rng_restored(x.device, ctx.rng)):
            out = ctx.edge(copies[0], copies[1], beta)
        sources = [t for t, want in zip(copies, wanted) if want]
        grads = iter(torch.autograd.grad(out, sources, grad, allow_unused=True) if sources else ())
        x_grad, w_grad, *parameter_grads = (next(grads) if want else None for want in wanted)
        return None, x_grad, w_grad, None, *parameter_grads


def _wanted(node) -> bool:
    """Whether the running backward pass needs the gradient that flows into ``node``."""
    if node is None:
        return False
    try:
        return torch._C._will_engine_execute_node(node)
    except RuntimeError:  # a parameter under torch.autograd.grad, where the engine cannot tell: computed
        return True


@contextlib.contextmanager
def _parameters_replaced(members: _Members, copies: list[torch.Tensor]):
    """The edge runs on ``copies`` of its parameters: differentiating the copies leaves the parameters' own
    gradient hooks to the surrounding backward pass."""
    for module, name, k in members.slots:
        module._parameters[name] = copies[k]  # type: ignore[assignment]  # a plain tensor stands in for the parameter
    try:
        yield
    finally:
        for module, name, k in members.slots:
            module._parameters[name] = members.parameters[k]


@contextlib.contextmanager
def _statistics_frozen(norms: tuple[_BatchNorm, ...]):
    """The batch norms still normalise with the batch's statistics (as in the forward) but leave their running
    statistics as the forward left them."""
    tracking = [norm for norm in norms if norm.track_running_stats]
    for norm in tracking:
        norm.track_running_stats = False
    try:
        yield
    finally:
        for norm in tracking:
            norm.track_running_stats = True


def _is_random(edge: nn.Module) -> bool:
    """Whether ``edge``'s forward draws random numbers (P-DARTS's dropout on skip candidates)."""
    return edge.training and getattr(edge, "skip_dropout", 0) > 0


def _rng_state(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


@contextlib.contextmanager
def _rng_restored(device: torch.device, state: torch.Tensor | None):
    """Replays the forward's random numbers (dropout masks), leaving the generator where it was."""
    if state is None:
        yield
        return
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        if cuda:
            torch.cuda.set_rng_state(state, device)
        else:
            torch.set_rng_state(state)
        yield
