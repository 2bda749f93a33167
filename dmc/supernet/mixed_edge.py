"""A DARTS- mixed edge (or chain layer): ``beta * aux(x) + sum_k softmax(alpha)_k * op_k(x)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from dmc.kernels import MixedSum
from dmc.kernels.batchnorm_sum import BatchNormMixedSum
from dmc.kernels.layout import layout_of
from dmc.kernels.select import REFERENCE, Kernels
from dmc.ops import OPS
from dmc.ops.basic import FactorizedReduce, Identity, Zero
from dmc.ops.conv import ReLUConvBN
from dmc.ops.fused import use_kernels
from dmc.ops.pool import WithBatchNorm
from dmc.supernet.recompute import recomputed


def auxiliary_edge(channels: int, stride: int, conv1x1: bool) -> nn.Module:
    """DARTS-'s auxiliary skip: identity (or an identity-initialised 1x1 conv) at stride 1,
    a factorized reduce at stride 2."""
    if stride == 2:
        return FactorizedReduce(channels, channels, affine=False)
    if not conv1x1:
        return Identity()
    return identity_conv1x1(channels, channels, 1)


def chain_auxiliary(c_in: int, c_out: int, stride: int, shape_change: str) -> nn.Module:
    """DARTS-'s auxiliary skip of a chain layer: the identity where the shape is kept; where it changes, a
    factorized reduce (stride 2; a 1x1 ReLU-conv-BN when only the width changes), as the official code does on
    stride-2 edges, or (``shape_change='conv1x1'``) an identity-initialised strided 1x1 conv."""
    if stride == 1 and c_in == c_out:
        return Identity()
    if shape_change == "conv1x1":
        return identity_conv1x1(c_in, c_out, stride)
    if stride == 2:
        return FactorizedReduce(c_in, c_out, affine=False)
    return ReLUConvBN(c_in, c_out, 1, 1, 0, affine=False)


def identity_conv1x1(c_in: int, c_out: int, stride: int) -> nn.Conv2d:
    """A 1x1 conv that starts as the identity on the first min(c_in, c_out) channels (zeros elsewhere)."""
    conv = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(c_out, c_in).view(c_out, c_in, 1, 1))
    return conv


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle (as PC-DARTS applies it to an edge's output), in ``x``'s memory format."""
    b, c, h, w = x.shape
    out = x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)
    return out.contiguous(memory_format=layout_of(x))


def _shares_input_relu(op: nn.Module) -> bool:
    return getattr(op, "shares_input_relu", False)


def _with_shared_relu(op: nn.Module, method: Callable, x: torch.Tensor, activated: torch.Tensor | None):
    """``method(x)`` (``op`` or one of its methods), handing ``activated = relu(x)`` to ops that take it."""
    if activated is not None and _shares_input_relu(op):
        return method(x, activated)
    return method(x)


class MixedEdge(nn.Module):
    """All candidate ops of one edge (or chain layer) plus the auxiliary edge; weights and beta come from the
    supernet.

    'none' candidates are not computed: their output is zero, so they only take part through the
    softmax that normalises the other weights. ``kernels`` (:func:`dmc.kernels.select_kernels`) are the
    implementations the edge and its candidates run: ``mixed_sum`` is the weighted sum's; ``batchnorm_mixed_sum``,
    when set, is the same sum with the candidates' final training-mode batch norms folded in: candidates ending with
    a ``BatchNorm2d(affine=False)`` (exposed as ``norm``/``pre_norm``, :mod:`dmc.ops.conv`) hand it their output
    before that batch norm. ``row`` is the edge's row of its architecture weights (set for chain layers, which the
    supernet runs by it).

    ``partial`` = K > 1 is PC-DARTS's partial channel connection: the candidates see the first C/K channels;
    the others bypass them (a 2x2 max-pool on stride-2 edges) and are concatenated after the weighted sum,
    then ``shuffle`` mixes the channels (PC-DARTS's channel shuffle). The auxiliary skip sees every channel.
    """

    computed_index: torch.Tensor

    mixed_sum: MixedSum
    batchnorm_mixed_sum: BatchNormMixedSum | None

    def __init__(self, op_names: Sequence[str], c_in: int, c_out: int, stride: int, aux: Callable[[], nn.Module],
                 pool_batchnorm: bool = True, act: str = "relu", row: int | None = None, partial: int = 1,
                 shuffle: bool = False, kernels: Kernels = REFERENCE):
        super().__init__()
        if partial > 1 and (c_in != c_out or c_in % partial):
            raise ValueError(f"partial channels: {c_in} -> {c_out} channels do not split into {partial} parts")
        self.op_names = tuple(op_names)
        self.in_channels, self.out_channels, self.stride, self.act = c_in, c_out, stride, act
        self.row = row
        self.recompute = False
        """Whether the edge is recomputed in backward (:meth:`set_recompute`)."""
        self.partial, self.shuffle = partial, shuffle
        self.computed = [k for k, name in enumerate(self.op_names) if not OPS[name].zero]
        ops = []
        for k in self.computed:
            spec = OPS[self.op_names[k]]
            op = spec.build(c_in // partial, c_out // partial, stride, affine=False, act=act, kernels=kernels)
            if spec.pool and pool_batchnorm:
                op = WithBatchNorm(op, c_out // partial)
            ops.append(op)
        self.ops = nn.ModuleList(ops)
        self.zero = Zero(c_out // partial, stride) if not ops else None  # an edge whose only candidate is 'none'
        self.bypass = nn.MaxPool2d(2, 2) if partial > 1 and stride == 2 else None
        self.aux = aux()  # built after the candidates: the initialisation order (and so the RNG) is DARTS's
        self.register_buffer("computed_index", torch.tensor(self.computed, dtype=torch.long), persistent=False)
        self.kernels = kernels
        self.mixed_sum, self.batchnorm_mixed_sum = kernels.mixed_sum, kernels.batchnorm_mixed_sum
        self.skip_dropout = 0.0
        """P-DARTS's prior: dropout rate on the outputs of identity skip candidates (training only)."""
        self._skips = [i for i, op in enumerate(self.ops) if isinstance(op, Identity)]

    def set_kernels(self, kernels: Kernels) -> None:
        """Runs the edge's weighted sum and its candidates with ``kernels`` from now on."""
        self.kernels = kernels
        self.mixed_sum, self.batchnorm_mixed_sum = kernels.mixed_sum, kernels.batchnorm_mixed_sum
        use_kernels(self.ops, self._candidate_kernels())

    def set_recompute(self, enabled: bool) -> None:
        """Whether :meth:`run` keeps only the edge's input for the backward and recomputes its candidates there
        (:func:`dmc.supernet.recompute.recomputed`): activation memory for compute."""
        self.recompute = enabled
        use_kernels(self.ops, self._candidate_kernels())

    def _candidate_kernels(self) -> Kernels:
        """The kernels' one-op separable conv stores no depthwise output and runs the depthwise conv again in the
        weight step's backward; a recomputed edge stores nothing anyway, so its convs run the plain pair."""
        return self.kernels._replace(separable=None) if self.recompute else self.kernels

    def run(self, x: torch.Tensor, weights: torch.Tensor, beta: torch.Tensor | None) -> torch.Tensor:
        """The edge's output (:meth:`forward`), recomputed in backward where :meth:`set_recompute` chose it."""
        if self.recompute and torch.is_grad_enabled():
            return recomputed(self, x, weights, beta)
        return self(x, weights, beta)

    def _candidate(self, i: int, x: torch.Tensor, activated: torch.Tensor | None) -> torch.Tensor:
        out = _with_shared_relu(self.ops[i], self.ops[i], x, activated)
        if self.skip_dropout > 0 and self.training and i in self._skips:
            out = F.dropout(out, self.skip_dropout)
        return out

    def _shared_relu(self, x: torch.Tensor) -> torch.Tensor | None:
        """``relu(x)`` once for the candidates that start with a fused ``ReLU -> depthwise conv`` (DARTS's separable
        and dilated convs), where two or more do; a temporary without autograd history (their backward masks the
        gradient with ``x > 0`` itself)."""
        if sum(map(_shares_input_relu, self.ops)) < 2:
            return None
        with torch.no_grad():
            return x.relu()

    def _mixed(self, x: torch.Tensor, w: torch.Tensor, aux: torch.Tensor | None,
               beta: torch.Tensor | None) -> torch.Tensor:
        """``beta * aux + sum_k w_k op_k(x)`` over the computed candidates (w: one weight each)."""
        activated = self._shared_relu(x)
        if self.batchnorm_mixed_sum is None or not self.training:
            outputs = [self._candidate(i, x, activated) for i in range(len(self.ops))]
            activated = None  # freed before the sum allocates its output
            return self.mixed_sum(outputs, w, aux, beta)
        zs, norms, ys, normed, plain = [], [], [], [], []
        for i, op in enumerate(self.ops):
            norm = getattr(op, "norm", None)
            if type(norm) is nn.BatchNorm2d and not norm.affine:  # not SyncBatchNorm: its statistics are global
                zs.append(_with_shared_relu(op, cast(Callable[..., torch.Tensor], op.pre_norm), x, activated))
                norms.append(norm)
                normed.append(i)
            else:
                ys.append(self._candidate(i, x, activated))
                plain.append(i)
        activated = None
        if not zs:
            return self.mixed_sum(ys, w, aux, beta)
        weights = w[normed + plain]
        if aux is not None:
            assert beta is not None, "an auxiliary output needs its beta"
            ys.append(aux)
            weights = torch.cat([weights, beta.reshape(1).to(w.dtype)])
        return self.batchnorm_mixed_sum(zs, norms, ys, weights)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, beta: torch.Tensor | None) -> torch.Tensor:
        """x: (B, C, H, W); weights: (K,) over all candidates; beta: scalar tensor, or None to skip aux."""
        if self.partial > 1:
            return self._forward_partial(x, weights, beta)
        if self.zero is not None:
            out = self.zero(x)
            return out if beta is None else out + beta * self.aux(x)
        w = weights.index_select(0, self.computed_index)
        return self._mixed(x, w, None if beta is None else self.aux(x), beta)

    def _forward_partial(self, x: torch.Tensor, weights: torch.Tensor, beta: torch.Tensor | None) -> torch.Tensor:
        c = x.shape[1] // self.partial
        head = x[:, :c].contiguous(memory_format=layout_of(x))
        rest = x[:, c:]
        if self.zero is not None:
            mixed = self.zero(head)
        else:
            mixed = self._mixed(head, weights.index_select(0, self.computed_index), None, None)
        out = torch.cat([mixed, rest if self.bypass is None else self.bypass(rest)], dim=1)
        if self.shuffle:
            out = channel_shuffle(out, self.partial)
        return out if beta is None else out + beta * self.aux(x)
