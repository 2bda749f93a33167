"""The weighted sum at the heart of every mixed edge: ``out = beta * aux + sum_k w_k * y_k``."""

from dmc.kernels.reference import mixed_sum

__all__ = ["mixed_sum"]
