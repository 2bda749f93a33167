"""The weighted sum at the heart of every mixed edge: ``out = beta * aux + sum_k w_k * y_k``.

Two implementations with one signature: ``reference`` (the eager PyTorch expression) and ``fused``
(the ``dmc::mixed_sum`` operator with compiled CPU/CUDA kernels); :func:`select_mixed_sum` picks one.
"""

from dmc.kernels.operator import fused_mixed_sum
from dmc.kernels.reference import mixed_sum
from dmc.kernels.select import KERNEL_CHOICES, MixedSum, select_mixed_sum

__all__ = ["KERNEL_CHOICES", "MixedSum", "fused_mixed_sum", "mixed_sum", "select_mixed_sum"]
