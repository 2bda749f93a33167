"""The supernet's hot spots as opaque, differentiable operators with fused CPU and CUDA kernels.

``dmc::mixed_sum`` is the weighted sum at the heart of every mixed edge (``out = beta * aux + sum_k w_k * y_k``);
``dmc::batchnorm_mixed_sum`` is the same sum with the candidates' final training-mode batch norms folded in;
``dmc::batchnorm_act`` is a training-mode batch norm and the ReLU or ReLU6 after it (the chain spaces' inverted
residuals);
``dmc::max_pool2d`` is max pooling that stores no indices for its backward;
``dmc::depthwise_conv2d`` is the ``ReLU -> depthwise conv`` that starts DARTS's separable and dilated
convolutions, and ``dmc::separable_conv2d`` the same with the pointwise conv after it, storing only its input.
Each has an eager reference with the same signature; :func:`select_kernels` picks one set.
"""

from dmc.kernels.batchnorm_act import BatchNormAct, batchnorm_act, fused_batchnorm_act
from dmc.kernels.batchnorm_sum import (
           BatchNormMixedSum,
           batchnorm_mixed_sum,
           fused_batchnorm_mixed_sum,
)
from dmc.kernels.depthwise import (
           DepthwiseConv,
           depthwise_conv2d,
           fused_depthwise_conv2d,
)
from dmc.kernels.max_pool import MaxPoolFunction, max_pool2d, recomputing_max_pool2d
from dmc.kernels.operator import fused_mixed_sum
from dmc.kernels.reference import mixed_sum
from dmc.kernels.select import KERNEL_CHOICES, Kernels, MixedSum, select_kernels
from dmc.kernels.separable import (
           SeparableConv,
           fused_separable_conv2d,
           separable_conv2d,
)

__all__ = ["KERNEL_CHOICES", "BatchNormAct", "BatchNormMixedSum", "DepthwiseConv", "Kernels", "MaxPoolFunction",
           "MixedSum", "SeparableConv", "batchnorm_act", "batchnorm_mixed_sum", "depthwise_conv2d",
           "fused_batchnorm_act", "fused_batchnorm_mixed_sum", "fused_depthwise_conv2d", "fused_mixed_sum",
           "fused_separable_conv2d", "max_pool2d", "mixed_sum", "recomputing_max_pool2d", "select_kernels",
           "separable_conv2d"]
