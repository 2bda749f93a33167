"""onnxruntime vs PyTorch eager latency on CPU for the DARTS_V2 CIFAR network (36 channels, 20 cells).

    python benchmarks/onnx_latency.py [--threads 2] [--repeats 20]

Both runtimes run in this process with the same thread count; the ratio onnxruntime / PyTorch is
what counts (target: <= 0.7 at batch 1), since absolute times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from dmc.compiler import build_network
from dmc.exporters.onnx import export_onnx
from dmc.genotype import published_genotypes
from dmc.profile import median_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batches", default="1,32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    network = build_network(published_genotypes()["DARTS_V2"], channels=36, layers=20).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "darts_v2.onnx"
        report = export_onnx(network, path, runs=1)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        print(f"DARTS_V2 cifar 36/20, {network.num_parameters():,} parameters; parity max abs error "
              f"{report['parity']['max_abs_error']:.1e}; {args.threads} threads, median of {args.repeats}")
        print(f"{'batch':>5} {'pytorch ms':>11} {'onnxruntime ms':>15} {'ratio ort/pt':>13}")
        for batch in (int(b) for b in args.batches.split(",")):
            x = torch.randn(batch, 3, 32, 32)
            with torch.no_grad():
                pt = median_ms(lambda: network(x), args.repeats, warmup=3)
            feed = {"input": x.numpy().astype(np.float32)}
            onnx_ms = median_ms(lambda: session.run(None, feed), args.repeats, warmup=3)
            print(f"{batch:>5} {pt:>11.1f} {onnx_ms:>15.1f} {onnx_ms / pt:>13.2f}")


if __name__ == "__main__":
    main()
