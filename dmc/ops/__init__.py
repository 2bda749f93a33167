"""Candidate operations: :data:`OPS` is the one table shared by the supernet and the compiler."""

from dmc.ops.registry import OpRegistry, OpSpec
from dmc.ops.table import OPS

__all__ = ["OPS", "OpRegistry", "OpSpec"]
