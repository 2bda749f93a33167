"""The GPU check for issue #5, as one script for the device machine (H100/H200): CUDA parity and timings.

    python benchmarks/gpu_check.py [--steps 5]

1. builds the CUDA kernels and checks dmc::mixed_sum forward/backward against the reference on random
   shapes, layouts and K = 1..9 (float32, and bfloat16 at a looser tolerance);
2. times the operator (fused vs eager expression, forward + backward, K = 8, S0 shapes);
3. times one S0 search step (16 ch, 8 cells, batch 32 and 96): paper edges vs dmc fused vs dmc fused +
   torch.compile (backend chosen as `dmc search --compile` chooses it), with peak CUDA memory.
Prints one line per measurement; record them in benchmarks/RESULTS.md with the card's name.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from search_step import PaperArchitect, PaperMixedEdge  # noqa: E402

from dmc.kernels import fused_mixed_sum, mixed_sum, native  # noqa: E402
from dmc.network import Cell  # noqa: E402
from dmc.search.architect import Architect  # noqa: E402
from dmc.space import load_space  # noqa: E402
from dmc.supernet import build_supernet, compile_backend, compile_edges  # noqa: E402


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


def parity() -> None:
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
            worst = max(worst, (got - exp).abs().max().item())
            for a, b in zip(torch.autograd.grad(got, [*ys, w, aux], g), torch.autograd.grad(exp, [*ys, w, aux], g)):
                worst = max(worst, (a - b).abs().max().item())
    print(f"parity float32, K=1..9, odd shapes and layouts: max abs error {worst:.2e} ({'OK' if worst < 1e-4 else 'FAIL'})")
    ys = [torch.randn(8, 64, 33, 31, device="cuda", dtype=torch.bfloat16) for _ in range(8)]
    w = torch.rand(8, device="cuda", dtype=torch.bfloat16)
    err = (torch.ops.dmc.mixed_sum(ys, w).float() - sum(wk.float() * y.float() for wk, y in zip(w, ys))).abs().max().item()
    print(f"parity bfloat16: max abs error {err:.2e} ({'OK' if err < 5e-2 else 'FAIL'})")


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


def search_step(batch: int, steps: int) -> None:
    backend = compile_backend("cuda")
    for name in ("paper", "dmc fused", "dmc fused + compile"):
        torch.manual_seed(0)
        model = build_supernet(load_space("darts_s0"), 10, 3).cuda()
        if name == "paper":
            for cell in model.blocks:
                if isinstance(cell, Cell):
                    cell.edges = torch.nn.ModuleList(PaperMixedEdge(e) for e in cell.edges)
        else:
            model.set_kernels(fused_mixed_sum)
            model.set_channels_last(True)
            if "compile" in name:
                compile_edges(model, backend)
        w_opt = torch.optim.SGD(model.weight_parameters(), 0.025, momentum=0.9)
        a_opt = torch.optim.Adam(model.arch_parameters(), 3e-4)
        architect = (PaperArchitect if name == "paper" else Architect)(model, a_opt, order=1)
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
        torch.cuda.reset_peak_memory_stats()
        ms = cuda_ms(step, repeats=steps, warmup=1)
        print(f"search step batch {batch} {name}{f' ({backend})' if 'compile' in name else ''}: {ms:.1f} ms/step, "
              f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, first step {first:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    native.load("cuda", on_build=print)
    parity()
    operator_timing()
    for batch in (32, 96):
        search_step(batch, args.steps)


if __name__ == "__main__":
    main()
