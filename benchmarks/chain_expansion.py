"""Batching the 1x1 expansions of a chain layer's candidates into one GEMM (issue 15), measured before building it.

    python benchmarks/chain_expansion.py [--threads 2] [--rounds 7] [--batch 16]

The six inverted-residual candidates of a ProxylessNAS/FairNAS layer (kernel 3/5/7 x expansion 3/6, stride 1,
ReLU6, search-time BatchNorm(affine=False), channels-last) read the same input. Compared, forward + backward of
the six candidates (their outputs summed, as the mixed sum does), at the widths and resolutions of the chain
search's stages (width 0.35, 128x128 input):
- "separate": each candidate runs its own expansion conv, batch norm and ReLU6 (dmc's chain supernet);
- "batched": one 1x1 conv with the six expansion weights concatenated (one GEMM), one batch norm and one ReLU6 over
  the concatenated channels (both per-channel, so the same math), then each candidate's depthwise conv and
  projection on its slice of the channels (copied to a dense channels-last tensor, as the convs need).
Times are the median and range of interleaved rounds; "batched / separate" is per round. The two outputs are
checked equal first (to float32 rounding: the GEMM sums in another order).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from dmc.ops.mbconv import MBConv

SHAPES = [(8, 64), (16, 32), (32, 16), (56, 8), (112, 4)]  # (channels, side) of the chain search's stages
CANDIDATES = [(k, e) for k in (3, 5, 7) for e in (3, 6)]


def separate(x, candidates):
    return sum(block(x) for block in candidates)


def batched(x, candidates):
    expansions = [block.body[0][0] for block in candidates]
    hidden = F.conv2d(x, torch.cat([conv.weight for conv in expansions]))
    hidden = F.relu6(F.batch_norm(hidden, None, None, training=True))
    out = 0
    for block, part in zip(candidates, hidden.split([conv.out_channels for conv in expansions], dim=1)):
        part = part.contiguous(memory_format=torch.channels_last)
        out = out + x + block.body[2](block.body[1](part))  # depthwise conv-BN-ReLU6, projection-BN, residual
    return out


IMPLEMENTATIONS = {"separate": separate, "batched": batched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.batch} images, {args.threads} threads, channels-last, {args.rounds} interleaved rounds")
    for channels, side in SHAPES:
        torch.manual_seed(0)
        candidates = [MBConv(channels, channels, k, e, 1, affine=False).to(memory_format=torch.channels_last)
                      for k, e in CANDIDATES]
        x = torch.randn(args.batch, channels, side, side).contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        torch.testing.assert_close(batched(x, candidates), separate(x, candidates), rtol=1e-4, atol=1e-4)
        times = {name: [] for name in IMPLEMENTATIONS}
        for _ in range(args.rounds):
            for name, fn in IMPLEMENTATIONS.items():
                start = time.perf_counter()
                fn(x, candidates).sum().backward()
                times[name].append(time.perf_counter() - start)
        ratios = [b / s for s, b in zip(times["separate"], times["batched"])]
        cells = [f"{name} {statistics.median(t) * 1e3:.1f} ms ({min(t) * 1e3:.1f}-{max(t) * 1e3:.1f})"
                 for name, t in times.items()]
        print(f"{channels:3d} ch {side:2d}x{side:<2d}: {', '.join(cells)}; batched / separate "
              f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
