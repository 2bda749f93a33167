"""The operations of the DARTS, R-DARTS and NAS-Bench-201 cell spaces and of the MobileNetV2-like chain spaces.

Semantics follow the reference implementations: DARTS `operations.py` (and R-DARTS's noise op),
NAS-Bench-201 `cell_operations.py`, torchvision's MobileNetV2, ProxylessNAS and FBNet's builder
(:mod:`dmc.ops.mbconv`). Both the supernet and the compiler build ops from :data:`OPS`,
so what is searched is what is deployed.
"""

from __future__ import annotations

from functools import partial

from dmc.ops.basic import FactorizedReduce, Identity, Noise, Zero
from dmc.ops.conv import Conv7x1_1x7, DilConv, ReLUConvBN, SepConv
from dmc.ops.mbconv import MBConv, chain_skip
from dmc.ops.pool import pool_3x3
from dmc.ops.registry import OpRegistry

OPS = OpRegistry()

OPS.register("none", "no connection (zeros)", zero=True)(lambda c_in, c_out, stride, affine: Zero(c_out, stride))
OPS.register("noise", "standard normal noise of the input's shape (R-DARTS S4)", deterministic=False)(
    lambda c_in, c_out, stride, affine: Noise(c_out, stride))


@OPS.register("skip_connect", "identity; factorized reduce when strided or changing channels")
def _skip(c_in: int, c_out: int, stride: int, affine: bool):
    return Identity() if stride == 1 and c_in == c_out else FactorizedReduce(c_in, c_out, affine)


OPS.register("max_pool_3x3", "3x3 max pooling", pool=True, fused=True)(partial(pool_3x3, "max"))
OPS.register("avg_pool_3x3", "3x3 average pooling (padding excluded)", pool=True)(partial(pool_3x3, "avg"))

for _k in (3, 5, 7):
    OPS.register(f"sep_conv_{_k}x{_k}", f"two stacked {_k}x{_k} depthwise-separable convs", parametric=True,
                 fused=True)(
        lambda c_in, c_out, stride, affine, kernels, k=_k: SepConv(c_in, c_out, k, stride, k // 2, affine, kernels))

for _k in (3, 5):
    OPS.register(f"dil_conv_{_k}x{_k}", f"{_k}x{_k} depthwise-separable conv, dilation 2", parametric=True,
                 fused=True)(
        lambda c_in, c_out, stride, affine, kernels, k=_k: DilConv(c_in, c_out, k, stride, k - 1, 2, affine,
                                                                    kernels))

OPS.register("conv_7x1_1x7", "1x7 then 7x1 conv", parametric=True)(
    lambda c_in, c_out, stride, affine: Conv7x1_1x7(c_in, c_out, stride, affine))

# NAS-Bench-201's convs carry a bias exactly when their BatchNorm is not affine (its reference code).
for _k in (1, 3, 7):
    OPS.register(f"nor_conv_{_k}x{_k}", f"ReLU, {_k}x{_k} conv, BN (NAS-Bench-201)", parametric=True)(
        lambda c_in, c_out, stride, affine, k=_k: ReLUConvBN(c_in, c_out, k, stride, k // 2, affine,
                                                              bias=not affine))


@OPS.register("factorized_reduce", "two offset stride-2 1x1 convs, concatenated (halves the size)",
              parametric=True)
def _factorized_reduce(c_in: int, c_out: int, stride: int, affine: bool):
    if stride != 2:
        raise ValueError("factorized_reduce only exists with stride 2")
    return FactorizedReduce(c_in, c_out, affine)


# Chain layers: mbconv_k{3,5,7}_e{1,3,6}, with _g2 (FBNet's group convs and shuffle) and/or _se.
for _k in (3, 5, 7):
    for _e in (1, 3, 6):
        for _g in (1, 2):
            for _se in (False, True):
                _name = f"mbconv_k{_k}_e{_e}" + ("_g2" if _g == 2 else "") + ("_se" if _se else "")
                _what = (f"inverted residual, {_k}x{_k} depthwise, expansion {_e}" + (", 2-group 1x1 convs" if _g == 2
                                                                                      else "")
                         + (", squeeze-excitation" if _se else ""))
                OPS.register(_name, _what, parametric=True, chain=True, groups=_g, fused=True)(
                    lambda c_in, c_out, stride, affine, act, kernels, k=_k, e=_e, g=_g, se=_se:
                    MBConv(c_in, c_out, k, e, stride, g, se, act, affine, kernels))

OPS.register("skip", "chain layer skipped (identity); a 1x1 conv, BN, act where the shape changes", chain=True,
             skip=True)(chain_skip)
