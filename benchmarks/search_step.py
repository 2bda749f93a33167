"""One DARTS- search step (architecture step + weight step) on CPU: dmc's configurations vs the paper's code.

    python benchmarks/search_step.py [--threads 2] [--steps 2] [--channels 16] [--layers 8] [--batch 32]

DARTS S0 space, 32x32 inputs, 10 classes, first-order architecture step on one batch and an SGD weight
step on another. The baseline is the same supernet run as the paper's code runs it: mixed edges
``sum(w * op(x) for w, op in zip(weights, ops))`` over every candidate, 'none' included, plus
``beta * aux(x)``; contiguous activations; and an architecture step that backpropagates into every
parameter (``loss.backward()``), where dmc asks autograd for the alpha gradients only. "paper edges"
is that baseline with dmc's architecture step, to show the two effects apart. Each configuration runs in its own process, so its peak
resident memory (ru_maxrss) is its own; the first step (which compiles, with --compile) is timed apart.
Targets: fastest dmc configuration >= 2x faster than the paper's; --recompute-edges at <= 0.5x peak
memory and <= 1.3x the fastest time.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

CONFIGS = {
    "paper": dict(paper=True, paper_architect=True),
    "paper edges": dict(paper=True),
    "dmc reference": dict(kernels="reference", channels_last=False),
    "dmc fused": dict(kernels="fused", channels_last=False),
    "dmc fused + channels_last": dict(kernels="fused", channels_last=True),
    "dmc fused + channels_last + compile": dict(kernels="fused", channels_last=True, compile=True),
    "dmc fused + channels_last + recompute": dict(kernels="fused", channels_last=True, recompute=True),
    "dmc fused + channels_last + compile + recompute": dict(kernels="fused", channels_last=True, compile=True,
                                                            recompute=True),
}


class PaperZero(nn.Module):
    """DARTS's Zero op: ``x.mul(0.)`` at the edge's stride."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class PaperMixedEdge(nn.Module):
    """The paper's mixed edge: every candidate computed ('none' as a zero tensor) and summed eagerly."""

    def __init__(self, edge):
        super().__init__()
        computed = dict(zip(edge.computed, edge.ops))
        stride = 2 if type(edge.aux).__name__ == "FactorizedReduce" else 1
        self._ops = nn.ModuleList(computed.get(k, PaperZero(stride)) for k in range(len(edge.op_names)))
        self.aux = edge.aux

    def forward(self, x, weights, beta):
        return sum(w * op(x) for w, op in zip(weights, self._ops)) + beta * self.aux(x)


class PaperArchitect:
    """The paper's first-order architecture step: ``loss.backward()`` fills every gradient."""

    def __init__(self, model, optimizer, order=1):
        self.model, self.optimizer = model, optimizer

    def step(self, x_train, y_train, x_val, y_val, lr, w_optimizer):
        self.optimizer.zero_grad()
        F.cross_entropy(self.model(x_val), y_val).backward()
        self.optimizer.step()


def build(name: str, args):
    """The model and its step function for configuration ``name``."""
    from dmc.kernels import select_mixed_sum
    from dmc.network import Cell
    from dmc.search.architect import Architect
    from dmc.space import load_space
    from dmc.supernet import build_supernet, compile_edges

    settings = CONFIGS[name]
    torch.manual_seed(0)
    space = load_space("darts_s0").with_macro(channels=args.channels, layers=args.layers)
    model = build_supernet(space, 10, 3)
    if settings.get("paper"):
        for cell in model.blocks:
            if isinstance(cell, Cell):
                cell.edges = nn.ModuleList(PaperMixedEdge(e) for e in cell.edges)
    else:
        model.set_kernels(select_mixed_sum(settings["kernels"], "cpu")[1])
        model.set_channels_last(settings["channels_last"])
        model.set_recompute_edges(settings.get("recompute", False))
        if settings.get("compile"):
            compile_edges(model, "inductor")
    w_opt = torch.optim.SGD(model.weight_parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(model.arch_parameters(), 3e-4, betas=(0.5, 0.999))
    architect = (PaperArchitect if settings.get("paper_architect") else Architect)(model, a_opt, order=1)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(args.batch, 3, 32, 32, generator=gen), torch.randint(0, 10, (args.batch,), generator=gen))
               for _ in range(2)]

    def step():
        (x, y), (x_val, y_val) = batches
        architect.step(x, y, x_val, y_val, 0.025, w_opt)
        w_opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward(inputs=model.weight_parameters())
        w_opt.step()

    model.train()
    return step


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def peak_memory(name: str, args) -> dict:
    """Run in a fresh process: its peak resident memory over the first step and one more."""
    step = build(name, args)
    first = timed(step)
    timed(step)
    return {"first_step_s": first, "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed rounds (one step per configuration each)")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--only", choices=list(CONFIGS), action="append", help="run these configurations")
    parser.add_argument("--one", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(peak_memory(args.one, args)))
        return
    passthrough = [f"--threads={args.threads}", f"--steps={args.steps}", f"--channels={args.channels}",
                   f"--layers={args.layers}", f"--batch={args.batch}"]
    names = args.only or list(CONFIGS)
    print(f"DARTS S0 supernet, {args.channels} channels, {args.layers} cells, batch {args.batch}, 32x32, "
          f"{args.threads} threads, CPU")
    results = {}
    for name in names:  # memory: one fresh process per configuration
        out = subprocess.run([sys.executable, __file__, "--one", name, *passthrough], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name}: failed\n{out.stderr[-2000:]}")
            continue
        results[name] = {"name": name, **json.loads(out.stdout.strip().splitlines()[-1])}
    # time: every configuration in this process, one step each per round, so the machine's drift is shared
    steps = {name: build(name, args) for name in results}
    for step in steps.values():
        step()  # compiles (from the cache the memory pass filled), warms up
    rounds = {name: [] for name in steps}
    for _ in range(args.steps):
        for name, step in steps.items():
            rounds[name].append(timed(step))
    for name, r in results.items():
        r["step_s"] = statistics.median(rounds[name])
        print(f"{name:>48}: {r['step_s']:7.2f} s/step  peak {r['peak_gib']:5.2f} GiB  first step {r['first_step_s']:6.1f} s")
    print(f"(median of {args.steps} interleaved rounds; peak resident memory of a fresh process per configuration; "
          f"the first step includes compilation)")
    if "paper" not in results:
        return
    paper = results["paper"]
    fastest = min((r for n, r in results.items() if n.startswith("dmc") and "recompute" not in n),
                  key=lambda r: r["step_s"], default=None)
    if fastest is None:
        return
    print(f"fastest dmc configuration: {fastest['name']}")
    print(f"  speed-up vs the paper's code: {paper['step_s'] / fastest['step_s']:.2f}x (target >= 2x)")
    if "paper edges" in results:
        print(f"  speed-up vs the paper's edges with dmc's architecture step: "
              f"{results['paper edges']['step_s'] / fastest['step_s']:.2f}x")
    for name, r in results.items():
        if "recompute" in name:
            print(f"  {name}: time {r['step_s'] / fastest['step_s']:.2f}x the fastest (target <= 1.3x), "
                  f"peak memory {r['peak_gib'] / paper['peak_gib']:.2f}x the paper's, "
                  f"{r['peak_gib'] / fastest['peak_gib']:.2f}x the fastest's (target <= 0.5x)")


if __name__ == "__main__":
    main()
