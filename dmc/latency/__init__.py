"""Latency look-up tables of chain search spaces: the file format and the costs it gives (no runtime imported here;
:mod:`dmc.exporters.latency` measures tables in onnxruntime or PyTorch)."""

from dmc.latency.table import (
    FIXED_PARTS,
    LATENCY_TABLE_FORMAT,
    LATENCY_TABLE_VERSION,
    RUNTIMES,
    LatencyTable,
    LatencyTableError,
    Timing,
    load_latency_table,
)

__all__ = ["FIXED_PARTS", "LATENCY_TABLE_FORMAT", "LATENCY_TABLE_VERSION", "RUNTIMES", "LatencyTable",
           "LatencyTableError", "Timing", "load_latency_table"]
