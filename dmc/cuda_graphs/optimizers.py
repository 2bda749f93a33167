"""SGD and Adam whose steps a CUDA graph can capture, computing what torch's eager optimisers compute, bit for bit.

A captured step must not read anything from the host: the learning rate a scheduler sets between steps and Adam's
step count live in device tensors (:meth:`CapturableOptimizer.sync_lr` copies the first in: an eager step does it
itself, a replayed graph needs it done before each replay). torch's own ``capturable=True`` and ``fused=True``
paths would do that too, but they round differently from the eager path DARTS- runs (torch's capturable Adam folds
the bias corrections into the denominator; a tensor learning rate makes ``CosineAnnealingLR`` recurse in float32),
and torch refuses ``capturable=True`` on the CPU, where the suite checks them. So:

- :class:`CapturableSGD` is torch's single-tensor SGD with the learning rate on the device (torch's fused SGD
  kernel rounds the momentum update differently on small tensors);
- :class:`CapturableAdam` is torch's single-tensor Adam with the step count on the device and the step-dependent
  factors computed there in float64, as Python computes them in the eager path.

Both keep torch's ``state_dict`` format (they subclass ``torch.optim.SGD`` and ``torch.optim.Adam``), so run
folders of earlier versions resume, and their learning rates stay Python floats for the schedulers.
"""

from __future__ import annotations

from typing import Any

import torch


def _capturing(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


class CapturableOptimizer(torch.optim.Optimizer):
    """An optimiser whose :meth:`step` reads each group's learning rate from a device tensor."""

    lr_dtype: torch.dtype | None = None
    """The device learning rate's dtype; None: the parameters' (a host float is cast to it in an eager step)."""
    _device_lr: list[torch.Tensor] | None = None
    _synced: list[float | None]
    """The learning rate each device tensor holds, so that a sync fills only the groups whose rate changed."""

    def sync_lr(self) -> None:
        """Copies every group's learning rate (the float a scheduler sets) into the device tensor :meth:`step`
        reads (a fill where it changed, no host synchronisation). An eager step syncs by itself; a replayed graph
        reads the tensor as the last sync left it, so call this before each replay."""
        if self._device_lr is None:
            first = self.param_groups[0]["params"][0]
            dtype = self.lr_dtype or first.dtype
            self._device_lr = [torch.zeros((), dtype=dtype, device=first.device) for _ in self.param_groups]
            self._synced = [None] * len(self.param_groups)
        for i, (tensor, group) in enumerate(zip(self._device_lr, self.param_groups)):
            lr = float(group["lr"])
            if self._synced[i] != lr:
                tensor.fill_(lr)
                self._synced[i] = lr

    def device_lr(self, group: int = 0) -> torch.Tensor:
        """Group ``group``'s learning rate on the device: synced from the group now, except while a CUDA graph is
        being captured (the capture must not bake a host value in; the caller syncs before each replay)."""
        if self._device_lr is None or not _capturing(self._device_lr[0].device):
            self.sync_lr()
        assert self._device_lr is not None
        return self._device_lr[group]


class CapturableSGD(torch.optim.SGD, CapturableOptimizer):
    """``torch.optim.SGD`` (momentum, weight decay; no Nesterov, no dampening) with a device learning rate."""

    def __init__(self, params: Any, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr, momentum=momentum, weight_decay=weight_decay)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        assert closure is None, "a captured step has no closure"
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"] != 0:
                grads = list(torch._foreach_add(grads, params, alpha=group["weight_decay"]))
            if group["momentum"] != 0:
                grads = self._momentum(params, grads, group["momentum"])
            # p - lr * d, rounded once: addcmul by a 0-dim tensor rounds as add's alpha does (a fused multiply-add)
            neg_lr = -self.device_lr(index)
            torch._foreach_addcmul_(params, grads, [neg_lr] * len(params))

    def _momentum(self, params: list[torch.Tensor], grads: list[torch.Tensor], momentum: float) -> list[torch.Tensor]:
        """The momentum buffers after this step: the gradient on the first step, ``momentum * buf + grad`` after."""
        buffers = [self.state[p].get("momentum_buffer") for p in params]
        if all(b is None for b in buffers):  # the first step (run eagerly before a capture)
            for p, grad in zip(params, grads):
                self.state[p]["momentum_buffer"] = grad.detach().clone()
            return [self.state[p]["momentum_buffer"] for p in params]
        if any(b is None for b in buffers):
            raise RuntimeError("some parameters have momentum and some not: step every parameter each time")
        torch._foreach_mul_(buffers, momentum)
        torch._foreach_add_(buffers, grads)
        return buffers


class CapturableAdam(torch.optim.Adam, CapturableOptimizer):
    """``torch.optim.Adam`` (L2 weight decay, no AMSGrad) with its step count and learning rate on the device."""

    lr_dtype = torch.float64  # lr / (1 - beta1^t) is taken in double precision, as Python takes it

    def __init__(self, params: Any, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        assert closure is None, "a captured step has no closure"
        for index, group in enumerate(self.param_groups):
            beta1, beta2 = group["betas"]
            lr = self.device_lr(index)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._state_of(p)
                count, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
                count += 1
                grad = p.grad if group["weight_decay"] == 0 else p.grad.add(p, alpha=group["weight_decay"])
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                steps = count.double()
                correction1 = 1 - torch.pow(beta1, steps)
                correction2_sqrt = (1 - torch.pow(beta2, steps)).pow(0.5)
                denominator = (exp_avg_sq.sqrt() / correction2_sqrt.to(p.dtype)).add_(group["eps"])
                p.addcdiv_(exp_avg * (-(lr / correction1)).to(p.dtype), denominator)

    def _state_of(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        elif state["step"].device != p.device:  # torch's eager Adam (and its checkpoints) keep it on the CPU
            state["step"] = state["step"].to(p.device)
        return state
