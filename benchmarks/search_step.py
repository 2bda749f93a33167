"""One DARTS- search step (architecture step + weight step) on CPU: dmc's configurations vs the paper's code.

    python benchmarks/search_step.py [--threads 2] [--steps 3] [--channels 16] [--layers 8] [--batch 32]
    python benchmarks/search_step.py --space proxyless_s5 [--width 0.35] [--image-size 128] [--batch 16]

DARTS S0 space (default), 32x32 inputs, 10 classes, first-order architecture step on one batch and an SGD weight
step on another. The baseline is the same supernet run as the paper's code runs it: mixed edges
``sum(w * op(x) for w, op in zip(weights, ops))`` over every candidate, 'none' included, plus
``beta * aux(x)``; contiguous activations; and an architecture step that backpropagates into every
parameter (``loss.backward()``), where dmc asks autograd for the alpha gradients only. "paper edges"
is that baseline with dmc's architecture step, to show the two effects apart. The dmc rows then add one
optimisation at a time: channels-last activations, the fused mixed sum alone, the fused ReLU-depthwise conv
alone, then with the pointwise conv after it in one op (storing no depthwise output), the batch-norm-folding sum
alone, the index-free max pool alone, the first two together, all of them (the default), torch.compile, edge
recomputation (dmc's default share of the edges, then every edge). Each
configuration runs in its own process, so its peak resident memory (ru_maxrss) is its own; the first step (which
compiles, with --compile) is timed apart.
Times are the median and range of interleaved rounds; ratios are against the "paper" row of the same run.
Targets (issue 15): default >= 4x faster than the paper's code at <= 0.6x its peak memory; --recompute-edges at
<= 0.3x the paper's peak memory and <= 1.3x the default's time.

``--space proxyless_s5``: the chain space (per-layer mixed edges of inverted residuals, c_in != c_out at each
stage's first layer, factorized-reduce auxiliaries) at a CPU-sized width, with the reference and the fused kernels
(the mixed sum alone, then with the 5x5/7x7 depthwise convs), channels-last off and on; time and memory are
printed as ratios against the "dmc reference" row of the same run (the paper's code path has no chain form here:
its edges are the reference mixed sum).
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

CELL_CONFIGS = {
    "paper": dict(paper=True, paper_architect=True),
    "paper edges": dict(paper=True),
    "dmc reference": dict(kernels="reference", channels_last=False),
    "dmc reference + channels_last": dict(kernels="reference", channels_last=True),
    "dmc fused sum + channels_last": dict(kernels="sum", channels_last=True),
    "dmc fused depthwise + channels_last": dict(kernels="depthwise", channels_last=True),
    "dmc fused depthwise + separable + channels_last": dict(kernels="depthwise+separable", channels_last=True),
    "dmc fused batchnorm sum + channels_last": dict(kernels="batchnorm", channels_last=True),
    "dmc index-free max pool + channels_last": dict(kernels="maxpool", channels_last=True),
    "dmc fused sum and depthwise + channels_last": dict(kernels="sum+depthwise", channels_last=True),
    "dmc fused": dict(kernels="fused", channels_last=False),
    "dmc fused + channels_last": dict(kernels="fused", channels_last=True),
    "dmc fused + channels_last + compile": dict(kernels="fused", channels_last=True, compile=True),
    "dmc fused + channels_last + recompute": dict(kernels="fused", channels_last=True, recompute=True),
    "dmc fused + channels_last + recompute every edge": dict(kernels="fused", channels_last=True, recompute=True,
                                                            recompute_share=0.0),
    "dmc fused + channels_last + compile + recompute": dict(kernels="fused", channels_last=True, compile=True,
                                                            recompute=True),
}
CHAIN_CONFIGS = {
    "dmc reference": dict(kernels="reference", channels_last=False),
    "dmc reference + channels_last": dict(kernels="reference", channels_last=True),
    "dmc fused sum + channels_last": dict(kernels="sum", channels_last=True),
    "dmc fused batchnorm act + channels_last": dict(kernels="bnact", channels_last=True),
    "dmc fused": dict(kernels="fused", channels_last=False),
    "dmc fused + channels_last": dict(kernels="fused", channels_last=True),
}
SPACES = {"darts_s0": CELL_CONFIGS, "proxyless_s5": CHAIN_CONFIGS}
CELL_SPACES = ("darts_s0",)
CHAIN_DEFAULTS = dict(batch=16, image_size=128)
CELL_DEFAULTS = dict(batch=32, image_size=32)


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

    def run(self, x, weights, beta):  # as search cells run their edges (never recomputed)
        return self(x, weights, beta)


class PaperArchitect:
    """The paper's first-order architecture step: ``loss.backward()`` fills every gradient."""

    def __init__(self, model, optimizer, order=1):
        self.model, self.optimizer = model, optimizer

    def step(self, x_train, y_train, x_val, y_val, lr, w_optimizer):
        self.optimizer.zero_grad()
        F.cross_entropy(self.model(x_val), y_val).backward()
        self.optimizer.step()


def kernels_of(kind: str, select_kernels):
    """The supernet's kernels for a configuration: 'reference', 'fused', or some fused operators alone ('sum',
    'depthwise', 'separable' (with 'depthwise'), 'batchnorm', 'maxpool', 'bnact', joined by '+') to show what each
    contributes."""
    reference, fused = select_kernels("reference", "cpu"), select_kernels("fused", "cpu")
    if kind in ("fused", "reference"):
        return fused if kind == "fused" else reference
    fields = {"sum": "mixed_sum", "depthwise": "depthwise", "batchnorm": "batchnorm_mixed_sum", "maxpool": "max_pool",
              "bnact": "batchnorm_act", "separable": "separable"}
    return reference._replace(kind=kind, **{fields[part]: getattr(fused, fields[part]) for part in kind.split("+")})


def build(name: str, args):
    """The model and its step function for configuration ``name``."""
    from dmc.kernels import select_kernels
    from dmc.network.cell import Cell
    from dmc.search.architect import Architect
    from dmc.space import load_space
    from dmc.supernet import build_supernet, compile_edges

    settings = SPACES[args.space][name]
    torch.manual_seed(0)
    if args.space in CELL_SPACES:
        space = load_space(args.space).with_macro(channels=args.channels, layers=args.layers)
    else:
        space = load_space(args.space).with_macro(width=args.width)
    model = build_supernet(space, 10, 3)
    if settings.get("paper"):
        for cell in model.blocks:
            if isinstance(cell, Cell):
                cell.edges = nn.ModuleList(PaperMixedEdge(e) for e in cell.edges)
    else:
        model.set_kernels(kernels_of(settings["kernels"], select_kernels))
        model.set_channels_last(settings["channels_last"])
        model.set_recompute_edges(settings.get("recompute", False), settings.get("recompute_share"))
        if settings.get("compile"):
            compile_edges(model, "inductor")
    w_opt = torch.optim.SGD(model.weight_parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(model.arch_parameters(), 3e-4, betas=(0.5, 0.999))
    architect = (PaperArchitect if settings.get("paper_architect") else Architect)(model, a_opt, order=1)
    gen = torch.Generator().manual_seed(0)
    size = args.image_size
    batches = [(torch.randn(args.batch, 3, size, size, generator=gen),
                torch.randint(0, 10, (args.batch,), generator=gen)) for _ in range(2)]

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


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def peak_memory(name: str, args) -> dict:
    """Run in a fresh process: its peak resident memory over the first step and one more, and how much of it
    the step added to the process with dmc imported."""
    import dmc.search.architect  # noqa: F401  (the imports build() needs, before the baseline)
    import dmc.supernet  # noqa: F401

    baseline = peak_rss_gib()
    step = build(name, args)
    first = timed(step)
    timed(step)
    peak = peak_rss_gib()
    return {"first_step_s": first, "peak_gib": peak, "step_gib": peak - baseline}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=list(SPACES), default="darts_s0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed rounds (one step per configuration each)")
    parser.add_argument("--channels", type=int, default=16, help="cell spaces: initial channels")
    parser.add_argument("--layers", type=int, default=8, help="cell spaces: cells")
    parser.add_argument("--width", type=float, default=0.35, help="chain spaces: width multiplier")
    parser.add_argument("--batch", type=int, default=None, help="batch size [32; chain 16]")
    parser.add_argument("--image-size", type=int, default=None, help="input side [32; chain 128]")
    names = sorted({n for configs in SPACES.values() for n in configs})
    parser.add_argument("--only", choices=names, action="append", help="run these configurations")
    parser.add_argument("--one", choices=names, help=argparse.SUPPRESS)
    args = parser.parse_args()
    defaults = CELL_DEFAULTS if args.space in CELL_SPACES else CHAIN_DEFAULTS
    args.batch = args.batch or defaults["batch"]
    args.image_size = args.image_size or defaults["image_size"]
    unknown = set(args.only or ()) - set(SPACES[args.space])
    if unknown:
        parser.error(f"not a configuration of {args.space}: {', '.join(sorted(unknown))}")
    return args


def measure(args) -> tuple[dict, dict]:
    """Peak memory of each configuration (a fresh process each) and its step times over interleaved rounds."""
    passthrough = [f"--space={args.space}", f"--threads={args.threads}", f"--steps={args.steps}",
                   f"--channels={args.channels}", f"--layers={args.layers}", f"--width={args.width}",
                   f"--batch={args.batch}", f"--image-size={args.image_size}"]
    results = {}
    for name in args.only or list(SPACES[args.space]):  # memory: one fresh process per configuration
        out = subprocess.run([sys.executable, __file__, "--one", name, *passthrough], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name}: failed\n{out.stderr[-2000:]}")
            continue
        results[name] = {"name": name, **json.loads(out.stdout.strip().splitlines()[-1])}
        print(f"measured the memory of {name}", file=sys.stderr, flush=True)
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
    return results, rounds


def print_table(results: dict, rounds: dict, args) -> None:
    for name, r in results.items():
        times = rounds[name]
        print(f"{name:>48}: {r['step_s']:7.2f} s/step ({min(times):.2f}-{max(times):.2f})  peak {r['peak_gib']:5.2f} "
              f"GiB (step {r['step_gib']:5.2f})  first step {r['first_step_s']:6.1f} s")
    print(f"(median and range of {args.steps} interleaved rounds; peak resident memory of a fresh process per "
          f"configuration, and what the step added to it; the first step includes compilation)")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(peak_memory(args.one, args)))
        return
    if args.space in CELL_SPACES:
        print(f"DARTS S0 supernet, {args.channels} channels, {args.layers} cells, batch {args.batch}, "
              f"{args.image_size}x{args.image_size}, {args.threads} threads, CPU")
    else:
        print(f"{args.space} chain supernet, width {args.width}, batch {args.batch}, "
              f"{args.image_size}x{args.image_size}, {args.threads} threads, CPU")
    results, rounds = measure(args)
    print_table(results, rounds, args)
    summarize_ratios(results, rounds, "paper" if args.space in CELL_SPACES else "dmc reference")
    if args.space in CELL_SPACES:
        summarize_cells(results, rounds)


def per_round_ratios(rounds: dict, name: str, baseline: str) -> list[float]:
    """``name``'s step time over ``baseline``'s, round by round (the rounds interleave, so drift cancels)."""
    return [t / b for t, b in zip(rounds[name], rounds[baseline])]


def summarize_ratios(results: dict, rounds: dict, baseline: str) -> None:
    """Time (median, and the range of the per-round ratios) and memory of every row against ``baseline``."""
    if baseline not in results:
        return
    base = results[baseline]
    print(f"ratios against {baseline!r} (time: median and range of the per-round ratios):")
    for name, r in results.items():
        per_round = per_round_ratios(rounds, name, baseline)
        print(f"{name:>48}: time {statistics.median(per_round):.2f}x ({min(per_round):.2f}-{max(per_round):.2f})  "
              f"peak memory {r['peak_gib'] / base['peak_gib']:.2f}x  "
              f"step memory {r['step_gib'] / base['step_gib']:.2f}x")


def summarize_cells(results: dict, rounds: dict) -> None:
    """Issue 15's targets, on medians of per-round ratios against the paper's code."""
    default, recompute = "dmc fused + channels_last", "dmc fused + channels_last + recompute"
    if "paper" not in results or default not in results:
        return

    def ratio(name, baseline):
        return statistics.median(per_round_ratios(rounds, name, baseline))

    paper = results["paper"]
    print(f"default ({default}): {1 / ratio(default, 'paper'):.2f}x faster than the paper's code (target >= 4x), "
          f"peak memory {results[default]['peak_gib'] / paper['peak_gib']:.2f}x (target <= 0.6x)")
    if recompute in results:
        print(f"{recompute}: time {ratio(recompute, default):.2f}x the default's (target <= 1.3x), peak memory "
              f"{results[recompute]['peak_gib'] / paper['peak_gib']:.2f}x the paper's (target <= 0.3x)")


if __name__ == "__main__":
    main()
