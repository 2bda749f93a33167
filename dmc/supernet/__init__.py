"""Supernets for DARTS- search: mixed edges with an auxiliary skip, search cells, the macro network."""

from dmc.supernet.compile import compile_backend, compile_edges
from dmc.supernet.mixed_edge import MixedEdge, auxiliary_edge
from dmc.supernet.network import Supernet, build_supernet

__all__ = ["MixedEdge", "Supernet", "auxiliary_edge", "build_supernet", "compile_backend", "compile_edges"]
