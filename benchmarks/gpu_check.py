"""The GPU check for issue #5, as one script for the device machine (H100/H200): CUDA parity and timings.

    python benchmarks/gpu_check.py [--steps 5] [--deadline SECONDS] [--only build,parity,...]

Sections, in order (cuDNN autotuning on, as `dmc search` runs; a section that raises prints its error in one
line and the script goes on to the next):
1. builds the CUDA kernels;
2. the self-check a search runs before it uses them: `check_fused("cuda")` (both operators) against TOLERANCE;
3. dmc::mixed_sum parity: forward/backward against the reference on random shapes, layouts and K = 1..9
   (float32, and bfloat16 at a looser tolerance);
4. dmc::depthwise_conv2d parity: kernels 3/5/7, dilation 1/2, stride 1/2, with and without ReLU, contiguous and
   channels-last; output, grad x and grad weight against the reference computed in float64 from the same inputs,
   in float32 (relative error 1e-4) and float16/bfloat16 (2e-2); the worst relative error per dtype;
5. dmc::max_pool2d parity (the index-free max pool, which `--kernels fused` uses on CUDA too): output and input
   gradient equal to F.max_pool2d's bit for bit, with and without ties, both layouts;
6. times dmc::mixed_sum (fused vs eager expression, forward + backward, K = 8, S0 shapes);
7. times dmc::depthwise_conv2d on the S0 search shapes (batch 32 and 96, channels-last, ReLU): forward + backward
   (grad x and grad weight), eager (ReLU + cuDNN) vs fused, for (k, d) = (3, 1), (5, 1), (3, 2), (5, 2), stride 1, 2;
8. times one S0 search step (16 ch, 8 cells, batch 32 and 96): paper edges vs dmc reference + channels-last vs
   dmc fused + channels-last, then the paper's and dmc's steps captured whole in one CUDA graph and replayed (the
   step launches tens of thousands of small kernels: what launching them costs), and last dmc fused +
   torch.compile (backend chosen as `dmc search --torch-compile` chooses it); with peak CUDA memory. "fused" is what
   `--kernels fused` selects on CUDA (the fused mixed sum, cuDNN's depthwise convolutions, the index-free max
   pool: see dmc.kernels.select.FUSED_CUDA).
9. ``graphs`` (issue 29): what ``dmc search`` and ``dmc train`` do with ``--cuda-graphs``, through the library:
   - parity: a search (S0, 8 channels, 5 cells, digits at 32 px, batch 32, 2 epochs: 56 steps and an epoch boundary,
     first and second order) and a training run (DARTS_V2 with drop-path and the auxiliary head), ``off`` vs ``on``,
     deterministic algorithms: largest relative difference of the weights, alphas and history, against
     :data:`GRAPH_TOLERANCE`, and every status line (a capture that fell back says so there);
   - resume: a captured search killed mid-epoch and resumed against the uninterrupted captured one;
   - timings: ms per training step of ``dmc search`` (epochs after the first, so capture and warm-up are out), S0 at
     16 channels and 8 cells at batch 32/64/96 and ``proxyless_s5`` at 64 px, ``off`` vs ``on``, in interleaved
     rounds (median and range), with the peak CUDA memory (the graphs' pools included);
   - the second design: the S0 step with the supernet under ``torch.compile(backend="cudagraphs")`` (AOT autograd +
     CUDA graph trees, no Triton) against the manual capture;
   - a ``TORCH_CHECK`` raised inside dmc's CUDA kernels (bad input), in a child process: its exit code says whether
     the exception reaches Python or kills the process (issue 29, item 5).
Prints one line per measurement and, with ``--json PATH``, writes them with the card's name; record them in
benchmarks/RESULTS.md. Exits 1 if a parity check failed or a section raised.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from search_step import PaperArchitect, PaperMixedEdge  # noqa: E402

from dmc.kernels import depthwise_conv2d, fused_depthwise_conv2d, fused_mixed_sum, mixed_sum, native  # noqa: E402
from dmc.kernels.depthwise import output_size  # noqa: E402
from dmc.kernels.max_pool import recomputing_max_pool2d  # noqa: E402
from dmc.kernels.select import REFERENCE, fused_kernels  # noqa: E402
from dmc.kernels.self_check import DEPTHWISE_CASES, TOLERANCE, check_fused  # noqa: E402
from dmc.network.cell import Cell  # noqa: E402
from dmc.search.architect import Architect  # noqa: E402
from dmc.space import load_space  # noqa: E402
from dmc.supernet import build_supernet, compile_backend, compile_edges  # noqa: E402

DEPTHWISE_TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 2e-2}
"""Largest absolute difference allowed, relative to the largest reference value of the same tensor."""
S0_SHAPES = [(32, 16, 32, 32), (32, 32, 16, 16), (32, 64, 8, 8), (96, 16, 32, 32), (96, 32, 16, 16), (96, 64, 8, 8)]
LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def cuda_ms(fn, repeats=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def verdict(error: float, tolerance: float) -> str:
    return "OK" if error <= tolerance else "FAIL"  # NaN fails too


def build() -> None:
    native.load("cuda", on_build=print)
    print("kernels: CUDA kernels loaded")


def self_check() -> bool:
    error = check_fused("cuda")
    print(f"self-check check_fused('cuda') (mixed_sum + depthwise): max relative error {error:.1e}, "
          f"tolerance {TOLERANCE:.0e} ({verdict(error, TOLERANCE)})")
    return error <= TOLERANCE


def parity() -> bool:
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for k in range(1, 10):
        for trial in range(4):
            shape = (int(torch.randint(1, 9, (1,), generator=gen)), *torch.randint(1, 40, (3,), generator=gen).tolist())
            ys = [torch.randn(shape, generator=gen).cuda() for _ in range(k)]
            if trial % 2:
                ys = [y.contiguous(memory_format=torch.channels_last) for y in ys]
            if trial == 3:
                ys[0] = torch.cat([ys[0], ys[0]], 1)[:, : shape[1]]  # not dense
            ys = [y.requires_grad_() for y in ys]
            w = torch.rand(k, generator=gen).cuda().requires_grad_()
            aux, beta = torch.randn(shape, generator=gen).cuda().requires_grad_(), torch.tensor(0.3).cuda()
            g = torch.randn(shape, generator=gen).cuda()
            got, exp = fused_mixed_sum(ys, w, aux, beta), mixed_sum(ys, w, aux, beta)
            worst = max(worst, _relative(got, exp))
            for a, b in zip(torch.autograd.grad(got, [*ys, w, aux], g), torch.autograd.grad(exp, [*ys, w, aux], g)):
                worst = max(worst, _relative(a, b))
    # relative: grad w sums g * y over up to 10^5 elements, where float32's own rounding exceeds 1e-4 absolute
    print(f"parity float32, K=1..9, odd shapes and layouts: max relative error {worst:.2e} ({verdict(worst, 1e-5)})")
    ys = [torch.randn(8, 64, 33, 31, device="cuda", dtype=torch.bfloat16) for _ in range(8)]
    w = torch.rand(8, device="cuda", dtype=torch.bfloat16)
    expected = sum(wk.float() * y.float() for wk, y in zip(w, ys))
    err = _nan_inf((torch.ops.dmc.mixed_sum(ys, w).float() - expected).abs().max().item())
    print(f"parity bfloat16: max abs error {err:.2e} ({verdict(err, 5e-2)})")
    return worst <= 1e-5 and err <= 5e-2


def _nan_inf(error: float) -> float:
    return math.inf if math.isnan(error) else error


def _relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest absolute difference relative to the largest expected value (NaN counts as infinite)."""
    return _nan_inf(((got - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item())


def _depthwise_grads(fn, x, w, g, stride, padding, dilation, relu) -> list[torch.Tensor]:
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    out = fn(x, w, stride, padding, dilation, relu)
    return [out.detach(), *torch.autograd.grad(out, [x, w], g)]


def depthwise_parity() -> bool:
    gen = torch.Generator().manual_seed(0)
    ok = True
    for dtype, tolerance in DEPTHWISE_TOLERANCE.items():
        worst, where = 0.0, ""
        for layout_name, layout in LAYOUTS.items():
            for kernel, dilation, stride, relu in DEPTHWISE_CASES:
                padding = dilation * (kernel - 1) // 2
                x = torch.randn(3, 37, 19, 23, generator=gen).to("cuda", dtype).contiguous(memory_format=layout)
                w = torch.randn(37, 1, kernel, kernel, generator=gen).to("cuda", dtype)
                size = [output_size(n, kernel, stride, padding, dilation) for n in x.shape[2:]]
                g = torch.randn(3, 37, *size, generator=gen).to("cuda", dtype).contiguous(memory_format=layout)
                got = _depthwise_grads(fused_depthwise_conv2d, x, w, g, stride, padding, dilation, relu)
                # the reference in float64: cuDNN's float32 convolutions may use TF32 (~1e-3) on this card
                exp = _depthwise_grads(depthwise_conv2d, x.double(), w.double(), g.double(), stride, padding,
                                       dilation, relu)
                for what, a, b in zip(("output", "grad x", "grad w"), got, exp):
                    error = _relative(a.double(), b)
                    if error > worst:
                        worst, where = error, f"k{kernel} d{dilation} s{stride} relu={relu} {layout_name} {what}"
        print(f"depthwise parity {str(dtype).removeprefix('torch.')}, {len(DEPTHWISE_CASES) * len(LAYOUTS)} cases: "
              f"worst relative error {worst:.1e} at {where or '-'}, tolerance {tolerance:.0e} "
              f"({verdict(worst, tolerance)})")
        ok = ok and worst <= tolerance
    return ok


def max_pool_parity() -> bool:
    """dmc::max_pool2d (no stored indices) against F.max_pool2d: output and input gradient, bit for bit, with ties."""
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for layout in LAYOUTS.values():
        for kernel, stride, padding in MAX_POOL_CASES:
            for ties in (False, True):
                x = torch.randn(4, 24, 17, 19, generator=gen)
                x = (x.round() if ties else x).cuda().contiguous(memory_format=layout).requires_grad_()
                g = torch.randn(F.max_pool2d(x, kernel, stride, padding).shape, generator=gen).cuda()
                got = recomputing_max_pool2d(x, kernel, stride, padding)
                exp = F.max_pool2d(x, kernel, stride, padding)
                for a, b in zip((got, *torch.autograd.grad(got, x, g)), (exp, *torch.autograd.grad(exp, x, g))):
                    worst = max(worst, _nan_inf((a - b).abs().max().item()))
    print(f"max_pool2d parity, {len(LAYOUTS) * len(MAX_POOL_CASES) * 2} cases (with ties): max abs difference "
          f"{worst:.1e} ({verdict(worst, 0.0)})")
    return worst == 0.0


def operator_timing() -> None:
    for shape in [(32, 16, 32, 32), (32, 32, 16, 16), (32, 64, 8, 8), (256, 16, 32, 32)]:
        ys = [torch.randn(shape, device="cuda", requires_grad=True) for _ in range(7)]
        a = torch.randn(shape, device="cuda", requires_grad=True)
        w = torch.rand(7, device="cuda", requires_grad=True)
        beta, g = torch.tensor(0.5, device="cuda"), torch.randn(shape, device="cuda")
        times = {name: cuda_ms(lambda: torch.autograd.grad(fn(ys, w, a, beta), [*ys, w, a], g))
                 for name, fn in (("eager", mixed_sum), ("fused", fused_mixed_sum))}
        moved = (9 + 17) * g.nbytes
        print(f"operator {shape}: eager {times['eager']:.3f} ms, fused {times['fused']:.3f} ms, "
              f"{times['eager'] / times['fused']:.2f}x; fused at {moved / times['fused'] / 1e6:.0f} GB/s")


def depthwise_timing() -> None:
    for shape in S0_SHAPES:
        x = torch.randn(shape, device="cuda").contiguous(memory_format=torch.channels_last).requires_grad_()
        for kernel, dilation in ((3, 1), (5, 1), (3, 2), (5, 2)):
            for stride in (1, 2):
                padding = dilation * (kernel - 1) // 2
                w = torch.randn(shape[1], 1, kernel, kernel, device="cuda", requires_grad=True)
                size = [output_size(n, kernel, stride, padding, dilation) for n in shape[2:]]
                g = torch.randn(*shape[:2], *size, device="cuda").contiguous(memory_format=torch.channels_last)
                times = {name: cuda_ms(lambda: torch.autograd.grad(fn(x, w, stride, padding, dilation, True),
                                                                   [x, w], g))
                         for name, fn in (("eager", depthwise_conv2d), ("fused", fused_depthwise_conv2d))}
                print(f"depthwise {shape} channels_last relu k{kernel} d{dilation} s{stride}: "
                      f"eager {times['eager']:.3f} ms, fused {times['fused']:.3f} ms, "
                      f"{times['eager'] / times['fused']:.2f}x")


SEARCH_ROWS = ("paper edges", "dmc reference + channels_last", "dmc fused + channels_last",
               "paper edges + CUDA graph", "dmc fused + channels_last + CUDA graph", "dmc fused + compile")
MAX_POOL_CASES = [(3, 1, 1), (3, 2, 1), (2, 2, 0)]
"""(kernel, stride, padding): DARTS's max_pool_3x3 at strides 1 and 2, and PC-DARTS's 2x2 bypass."""


def search_step(batch: int, steps: int, name: str) -> None:
    backend = compile_backend("cuda")
    torch.manual_seed(0)
    model = build_supernet(load_space("darts_s0"), 10, 3).cuda()
    graphed = "CUDA graph" in name
    if name.startswith("paper edges"):
        for cell in model.blocks:
            if isinstance(cell, Cell):
                cell.edges = torch.nn.ModuleList(PaperMixedEdge(e) for e in cell.edges)
    else:
        model.set_kernels(REFERENCE if "reference" in name else fused_kernels("cuda"))
        model.set_channels_last(True)
        if "compile" in name:
            compile_edges(model, backend)
    w_opt = torch.optim.SGD(model.weight_parameters(), 0.025, momentum=0.9)
    a_opt = torch.optim.Adam(model.arch_parameters(), 3e-4, capturable=graphed)
    architect = (PaperArchitect if name.startswith("paper edges") else Architect)(model, a_opt, order=1)
    x, y = torch.randn(batch, 3, 32, 32, device="cuda"), torch.randint(0, 10, (batch,), device="cuda")

    def step():
        architect.step(x, y, x, y, 0.025, w_opt)
        w_opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward(inputs=model.weight_parameters())
        w_opt.step()

    started = time.perf_counter()
    step()
    torch.cuda.synchronize()
    first = time.perf_counter() - started
    if graphed:  # the whole step replayed as one CUDA graph: no Python, no per-kernel launch cost
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the default stream, as torch.cuda.graph asks
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.reset_peak_memory_stats()  # the graph keeps what its capture allocated: count that
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        step = graph.replay
    else:
        torch.cuda.reset_peak_memory_stats()
    ms = cuda_ms(step, repeats=steps, warmup=1)
    print(f"search step batch {batch} {name}{f' ({backend})' if 'compile' in name else ''}: {ms:.1f} ms/step, "
          f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, first step {first:.1f} s")


GRAPH_TOLERANCE = 1e-3
"""Largest relative difference (of each tensor's largest value) between a captured and an eager run that the graphs
parity accepts: float32 steps replayed vs launched, 56 steps on."""
DRY_RUN = {"device": "cuda", "on": "on", "scale": 1}
"""``--cpu-dry-run`` runs the graphs parity and timings on the CPU, with ``static`` for ``on`` and small networks: a
check of this script before a device is lent, not a measurement."""
RESULTS: list[dict] = []
"""What ``--json`` writes: one entry per measurement of the graphs section."""


def _record(**entry) -> None:
    RESULTS.append(entry)
    print(" ".join(f"{k}={v}" for k, v in entry.items()), flush=True)


def _search_run(folder: Path, order: int, cuda_graphs: str, on_event=None, resume: bool = False, **settings):
    from dmc.search import SearchConfig, search

    small = DRY_RUN["scale"] > 1
    config = SearchConfig(**{"space": "darts_s0", "dataset": "digits", "image_size": 16 if small else 32,
                             "channels": 2 if small else 8, "layers": 3 if small else 5, "batch_size": 32,
                             "epochs": 2, "order": order, "deterministic": True,
                             **settings, "device": DRY_RUN["device"], "cuda_graphs": _mode(cuda_graphs)})
    return search(SearchConfig() if resume else config, folder, resume=resume, on_event=on_event)


def _mode(cuda_graphs: str) -> str:
    return DRY_RUN["on"] if cuda_graphs == "on" else cuda_graphs


def _peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if DRY_RUN["device"] == "cuda" else float("nan")


def _reset_peak() -> None:
    if DRY_RUN["device"] == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _relative_difference(a: dict, b: dict) -> float:
    worst = 0.0
    for key, value in a.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            other = b[key].to(value.device)
            worst = max(worst, float((value - other).abs().max() / value.abs().max().clamp_min(1e-12)))
    return worst


def _statuses() -> tuple[list[str], object]:
    said: list[str] = []
    return said, lambda kind, **info: said.append(info["message"]) if kind == "status" else None


def graphs_parity() -> bool:
    """Captured vs eager search (first and second order) and training, and a resumed captured search."""
    from dmc.genotype import published_genotypes
    from dmc.runfolder import SEARCH_RUN, TRAIN_RUN
    from dmc.train import TrainConfig, train

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for order in (1, 2):
            runs = {}
            for mode in ("off", "on"):
                said, on_event = _statuses()
                _search_run(root / f"search{order}-{mode}", order, mode, on_event)
                runs[mode] = SEARCH_RUN.load(root / f"search{order}-{mode}" / "last.pt")
                _record(check="graphs search status", order=order, mode=mode, status=" | ".join(said))
            worst = _relative_difference(runs["off"]["model"], runs["on"]["model"])
            ok &= worst <= GRAPH_TOLERANCE
            _record(check="graphs search parity", order=order, relative_difference=f"{worst:.2e}",
                    verdict=verdict(worst, GRAPH_TOLERANCE))

        def kill(kind, **info):
            if kind == "step" and info["epoch"] == 1 and info["step"] == 3:
                raise KeyboardInterrupt

        try:
            _search_run(root / "killed", 1, "on", kill)
        except KeyboardInterrupt:
            pass
        _search_run(root / "killed", 1, "on", resume=True)
        worst = _relative_difference(SEARCH_RUN.load(root / "search1-on" / "last.pt")["model"],
                                     SEARCH_RUN.load(root / "killed" / "last.pt")["model"])
        ok &= worst <= GRAPH_TOLERANCE
        _record(check="graphs resumed search vs uninterrupted", relative_difference=f"{worst:.2e}",
                verdict=verdict(worst, GRAPH_TOLERANCE))

        runs = {}
        for mode in ("off", "on"):
            said, on_event = _statuses()
            small = DRY_RUN["scale"] > 1
            config = TrainConfig.for_dataset("digits", image_size=16 if small else 32, channels=2 if small else 8,
                                             layers=3 if small else 5, batch_size=32, epochs=2, auxiliary=not small,
                                             drop_path=0.2, deterministic=True, device=DRY_RUN["device"],
                                             cuda_graphs=_mode(mode))
            train(published_genotypes()["DARTS_V2"], config, root / f"train-{mode}", on_event=on_event)
            runs[mode] = TRAIN_RUN.load(root / f"train-{mode}" / "last.pt")
            _record(check="graphs train status", mode=mode, status=" | ".join(said))
        worst = _relative_difference(runs["off"]["model"], runs["on"]["model"])
        ok &= worst <= GRAPH_TOLERANCE
        _record(check="graphs train parity", relative_difference=f"{worst:.2e}",
                verdict=verdict(worst, GRAPH_TOLERANCE))
    return ok


def graphs_timing(rounds: int) -> None:
    """ms per step of `dmc search`, eager vs captured, interleaved rounds; S0 at three batch sizes and the chain."""
    scale = DRY_RUN["scale"]
    cases = [("darts_s0", batch // scale, dict(channels=16 // scale, layers=max(3, 8 // scale),
                                               image_size=32 // scale)) for batch in (32, 64, 96)]
    cases.append(("proxyless_s5", 32 // scale, dict(image_size=max(32, 64 // scale), width=1.0 / scale)))
    for space, batch, settings in cases:
        times: dict[str, list[float]] = {"off": [], "on": []}
        peaks: dict[str, float] = {}
        for _ in range(rounds):
            for mode in ("off", "on"):
                stamps: dict[tuple[int, str], float] = {}
                counts: dict[int, int] = {}

                def on_event(kind, stamps=stamps, counts=counts, **info):
                    if kind == "epoch_start":
                        stamps[(info["epoch"], "start")] = time.perf_counter()
                    elif kind == "step":
                        stamps[(info["epoch"], "last")] = time.perf_counter()
                        counts[info["epoch"]] = info["step"]

                _reset_peak()
                with tempfile.TemporaryDirectory() as tmp:
                    _search_run(Path(tmp) / "run", 1, mode, on_event, space=space, batch_size=batch, epochs=3,
                                deterministic=False, **settings)
                peaks[mode] = _peak_gib()
                per_step = [(stamps[(e, "last")] - stamps[(e, "start")]) / counts[e] * 1e3 for e in (1, 2)]
                times[mode].append(statistics.median(per_step))
        medians = {mode: statistics.median(values) for mode, values in times.items()}
        _record(check="graphs timing", space=space, batch=batch,
                eager_ms=f"{medians['off']:.1f} [{min(times['off']):.1f}-{max(times['off']):.1f}]",
                graphed_ms=f"{medians['on']:.1f} [{min(times['on']):.1f}-{max(times['on']):.1f}]",
                speedup=f"{medians['off'] / medians['on']:.2f}x",
                peak_gib_eager=f"{peaks['off']:.2f}", peak_gib_graphed=f"{peaks['on']:.2f}")


def graphs_compile_design(batch: int, steps: int) -> None:
    """The second design: the supernet under torch.compile(backend="cudagraphs"), the optimisers eager."""
    torch.manual_seed(0)
    model = build_supernet(load_space("darts_s0"), 10, 3, kernels=fused_kernels("cuda")).cuda()
    model.set_channels_last(True)
    compiled = torch.compile(model, backend="cudagraphs", dynamic=False)
    w_opt = torch.optim.SGD(model.weight_parameters(), 0.025, momentum=0.9)
    a_opt = torch.optim.Adam(model.arch_parameters(), 3e-4)
    x, y = torch.randn(batch, 3, 32, 32, device="cuda"), torch.randint(0, 10, (batch,), device="cuda")

    def step():
        a_opt.zero_grad(set_to_none=True)
        F.cross_entropy(compiled(x), y).backward(inputs=model.arch_parameters())
        a_opt.step()
        w_opt.zero_grad(set_to_none=True)
        F.cross_entropy(compiled(x), y).backward(inputs=model.weight_parameters())
        w_opt.step()

    started = time.perf_counter()
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    first = time.perf_counter() - started
    torch.cuda.reset_peak_memory_stats()
    ms = cuda_ms(step, repeats=steps, warmup=1)
    _record(check="graphs design torch.compile(cudagraphs)", batch=batch, ms_per_step=f"{ms:.1f}",
            peak_gib=f"{torch.cuda.max_memory_allocated() / 2**30:.2f}", first_three_steps_s=f"{first:.1f}")


def graphs_torch_check() -> None:
    """A bad input to dmc::mixed_sum on CUDA, in a child: does its TORCH_CHECK reach Python as an error?"""
    code = ("import torch, dmc.kernels.native as n; n.load('cuda');\n"
            "ys=[torch.randn(2,3,device='cuda'), torch.randn(2,4,device='cuda')]\n"
            "try:\n torch.ops.dmc.mixed_sum(ys, torch.ones(2, device='cuda')); print('no error raised')\n"
            "except Exception as e:\n print('raised', type(e).__name__, str(e).splitlines()[0][:200])")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                           cwd=Path(__file__).parent.parent)
    _record(check="graphs TORCH_CHECK in a CUDA kernel", exit_code=child.returncode,
            output=" ".join((child.stdout + child.stderr).split())[-300:])


def section(name: str, fn, *args) -> bool:
    """Runs one section; False if it reported a failed check or raised (printed in one line)."""
    try:
        return fn(*args) is not False
    except Exception as exc:  # noqa: BLE001 - one failing section must not hide the others
        print(f"{name}: ERROR {type(exc).__name__}: {' '.join(str(exc).split())[:400]}", flush=True)
        return False
    finally:
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--deadline", type=float, default=math.inf,
                        help="seconds after which the remaining sections are skipped (a device lease is short)")
    parser.add_argument("--only", default="", help="comma-separated words; runs only the sections naming one")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the graphs timings")
    parser.add_argument("--json", type=Path, help="writes the graphs section's measurements here, with the card")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="runs the graphs parity and timings on the CPU (static for on, small networks)")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.cpu_dry_run:
        DRY_RUN.update(device="cpu", on="static", scale=4)
        for name, fn, *rest in [("graphs parity", graphs_parity), ("graphs timing", graphs_timing, 1)]:
            section(name, fn, *rest)
        if args.json is not None:
            args.json.write_text(json.dumps({"device": "cpu (dry run)", "results": RESULTS}, indent=1))
        return
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    torch.backends.cudnn.benchmark = True  # as `dmc search` runs (dmc.runtime.seed_everything)
    sections = [("build", build), ("self-check", self_check), ("mixed_sum parity", parity),
                ("depthwise parity", depthwise_parity), ("max_pool parity", max_pool_parity),
                ("mixed_sum timing", operator_timing),
                ("depthwise timing", depthwise_timing)]
    # torch.compile's rows last: their first step compiles every edge, the slowest part of the script
    sections += [(f"search step batch {batch} {name}", search_step, batch, args.steps, name)
                 for compiled in (False, True) for batch in (32, 96) for name in SEARCH_ROWS
                 if ("compile" in name) == compiled]
    sections += [("graphs TORCH_CHECK", graphs_torch_check), ("graphs parity", graphs_parity),
                 ("graphs timing", graphs_timing, args.rounds),
                 *[(f"graphs design compile batch {b}", graphs_compile_design, b, args.steps) for b in (32, 96)]]
    failed, skipped = [], []
    for name, fn, *rest in sections:
        if args.only and not any(word in name for word in args.only.split(",")):
            continue
        if time.perf_counter() - started > args.deadline:
            skipped.append(name)
        elif not section(name, fn, *rest):
            failed.append(name)
    if skipped:
        print(f"skipped after the {args.deadline:.0f} s deadline: {', '.join(skipped)}")
    print(f"gpu_check: {'FAILED: ' + ', '.join(failed) if failed else 'all sections run passed'}")
    if args.json is not None:
        args.json.write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                         "failed": failed, "skipped": skipped, "results": RESULTS}, indent=1))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
