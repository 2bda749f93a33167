"""The alpha update of bi-level DARTS: first order, or second order with the unrolled weight step."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from dmc.supernet import Supernet


class Architect:
    """Updates the architecture logits on a validation batch (Algorithm 1, line 4).

    ``order=1`` uses dL_val/dalpha at the current weights. ``order=2`` evaluates it at the weights
    after one virtual SGD step w' = w - lr * (momentum buffer + dL_train/dw + wd * w), and subtracts
    lr * (d2 L_train / dalpha dw) . dL_val/dw', approximated by finite differences (DARTS, eq. 7-8).

    The step reads nothing from the host, so that a CUDA graph can capture it (:mod:`dmc.cuda_graphs`): ``lr`` is
    the weight optimiser's learning rate as a device tensor (or a float), the finite-difference radius stays on the
    device (in float64, as the eager code computed it in Python), and the architecture optimiser is a
    :class:`dmc.cuda_graphs.CapturableOptimizer` whose learning rate was synced.

    On several processes, ``average`` (:meth:`dmc.distributed.Distributed.average_`) makes every gradient the
    step combines the mean over the processes, as one process would compute it on the global batch.
    """

    def __init__(self, model: Supernet, optimizer: torch.optim.Optimizer, order: int = 1,
                 momentum: float = 0.9, weight_decay: float = 3e-4, fd_radius: float = 1e-2,
                 average: Callable[[Sequence[torch.Tensor]], None] = lambda tensors: None,
                 val_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None):
        self.model, self.optimizer, self.order, self.average = model, optimizer, order, average
        self.val_loss = val_loss or F.cross_entropy
        """The objective on the validation half, of (logits, labels): cross-entropy, or with the network's cost
        folded in (:mod:`dmc.search.cost`); the training half's loss stays cross-entropy."""
        self.momentum, self.weight_decay = momentum, weight_decay
        self.fd_radius = fd_radius
        """Finite-difference step, relative to ||dL_val/dw'|| (DARTS uses 0.01)."""

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.model(x), y)

    def _val_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.val_loss(self.model(x), y)

    def step(self, x_train, y_train, x_val, y_val, lr: torch.Tensor | float,
             w_optimizer: torch.optim.Optimizer) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        arch = self.model.arch_parameters()
        if self.order == 1:
            self._val_loss(x_val, y_val).backward(inputs=arch)
            self.average([p.grad for p in arch if p.grad is not None])
        else:
            grads = self._unrolled_grads(x_train, y_train, x_val, y_val, lr, w_optimizer)
            self.average(grads)
            for p, g in zip(arch, grads):
                p.grad = g
        self.optimizer.step()

    @torch.no_grad()
    def _shift(self, params, vectors, scale: torch.Tensor) -> None:
        """params += scale * vectors, for a device scalar ``scale`` of their dtype: ``addcmul`` rounds as ``add``'s
        ``alpha`` does (one fused multiply-add), so the step equals the one with a host scalar bit for bit."""
        torch._foreach_addcmul_(params, vectors, [scale] * len(params))

    def _unrolled_grads(self, x_train, y_train, x_val, y_val, lr, w_optimizer):
        weights, arch = self.model.weight_parameters(), self.model.arch_parameters()
        dtype = weights[0].dtype
        lr = lr.to(dtype) if isinstance(lr, torch.Tensor) else torch.tensor(lr, dtype=dtype, device=weights[0].device)
        with torch.enable_grad():
            g_train = torch.autograd.grad(self._loss(x_train, y_train), weights)
        with torch.no_grad():
            self.average(g_train)
            step = []
            for w, g in zip(weights, g_train):
                buf = w_optimizer.state.get(w, {}).get("momentum_buffer")
                d = g + self.weight_decay * w
                step.append(d if buf is None else d + self.momentum * buf)
            original = [w.detach().clone() for w in weights]
        self._shift(weights, step, -lr)  # w' = w - lr * step
        with torch.enable_grad():
            grads = torch.autograd.grad(self._val_loss(x_val, y_val), arch + weights)
        d_alpha, d_w = list(grads[: len(arch)]), [g.detach() for g in grads[len(arch):]]
        with torch.no_grad():
            self.average(d_w)
            torch._foreach_copy_(weights, original)
        # Hessian-vector product by central differences around w, radius fd_radius / ||dL_val/dw'||
        r = self.fd_radius / torch.cat([g.flatten() for g in d_w]).norm().clamp_min(1e-12).double()
        self._shift(weights, d_w, r.to(dtype))
        with torch.enable_grad():
            g_pos = torch.autograd.grad(self._loss(x_train, y_train), arch)
        self._shift(weights, d_w, (-2 * r).to(dtype))
        with torch.enable_grad():
            g_neg = torch.autograd.grad(self._loss(x_train, y_train), arch)
        with torch.no_grad():
            torch._foreach_copy_(weights, original)
        return [da - lr * (gp - gn) / (2 * r).to(dtype) for da, gp, gn in zip(d_alpha, g_pos, g_neg)]
