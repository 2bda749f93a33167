"""The optimisation side of the training recipes: optimisers, learning-rate schedules, weight EMA, dropout.

``darts``: SGD with momentum, cosine per epoch (torch's ``CosineAnnealingLR``, as DARTS trains). ``imagenet``: the
MnasNet TF reference: RMSProp with TensorFlow's semantics (:class:`RMSpropTF`), linear warm-up then the learning
rate x0.97 every 2.4 epochs, per step, and an exponential moving average of the weights (:class:`WeightEMA`).
Everything here keeps its state in ``state_dict()``, so that a resumed run continues bitwise.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dmc.cuda_graphs import CapturableOptimizer, CapturableSGD
from dmc.errors import SettingError
from dmc.train.config import TrainConfig


class RMSpropTF(CapturableOptimizer):
    """RMSProp as TensorFlow 1 (``tf.train.RMSPropOptimizer``) and the MnasNet/EfficientNet references run it::

        ms  = decay * ms + (1 - decay) * g**2          # ms starts at 1, not 0
        mom = momentum * mom + lr * g / sqrt(ms + eps)  # eps inside the square root; lr inside the buffer
        p  -= mom

    torch's ``RMSprop`` differs on all three counts (eps outside the root, the mean square started at 0, which
    makes the first steps ~3x the gradient, and the learning rate applied after the buffer), so a TF eps of 1e-3 is
    not its eps of 1e-3. ``weight_decay`` adds ``weight_decay * p`` to the gradient (TF's L2 loss term).

    The learning rate is read from a device tensor (:meth:`CapturableOptimizer.sync_lr` before each step), so that a
    CUDA graph can capture the step (:mod:`dmc.cuda_graphs`)."""

    def __init__(self, params, lr: float, decay: float = 0.9, momentum: float = 0.9, eps: float = 1e-3,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, decay=decay, momentum=momentum, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                state = self.state[p]
                if not state:
                    state["mean_square"] = torch.ones_like(p, memory_format=torch.preserve_format)
                    state["momentum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            ms = [self.state[p]["mean_square"] for p in params]
            mom = [self.state[p]["momentum"] for p in params]
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            torch._foreach_mul_(ms, group["decay"])
            torch._foreach_addcmul_(ms, grads, grads, value=1 - group["decay"])
            denominator = torch._foreach_add(ms, group["eps"])
            torch._foreach_sqrt_(denominator)
            torch._foreach_mul_(mom, group["momentum"])
            # lr * g / d as addcdiv's value=lr rounds it: (lr * g), then / d
            torch._foreach_addcdiv_(mom, torch._foreach_mul(grads, self.device_lr(index)), denominator)
            torch._foreach_sub_(params, mom)
        return loss


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))


def parameter_groups(model: nn.Module, weight_decay: float, norm_weight_decay: bool) -> list[dict[str, Any]]:
    """One group with ``weight_decay``, or (``norm_weight_decay`` off) a second group of the normalisation layers'
    parameters without it."""
    if norm_weight_decay:
        return [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    norm = {id(p) for m in model.modules() if _is_norm(m) for p in m.parameters(recurse=False)}
    decayed = [p for p in model.parameters() if id(p) not in norm]
    plain = [p for p in model.parameters() if id(p) in norm]
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, config: TrainConfig) -> CapturableOptimizer:
    """SGD (with momentum; the DARTS recipe's optimiser exactly as before recipes existed) or :class:`RMSpropTF`,
    capturable in a CUDA graph (their learning rates on the device: :meth:`CapturableOptimizer.sync_lr`), with
    weight decay on all parameters or (``norm_weight_decay`` off) all but the normalisation layers'."""
    groups = parameter_groups(model, config.weight_decay, config.norm_weight_decay)
    if config.optimizer == "sgd":
        return CapturableSGD(groups, config.lr, momentum=config.momentum)
    return RMSpropTF(groups, config.lr, decay=config.rmsprop_decay, momentum=config.momentum,
                     eps=config.rmsprop_eps)


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate at training step ``step`` (0-based, counted over the whole run) as a fraction of
    ``config.lr``, for the per-step schedules (:attr:`TrainConfig.per_step_schedule`).

    Warm-up: ``step / warmup_steps`` while ``step < warmup_steps = warmup_epochs * steps_per_epoch``. Then
    step-exp: ``lr_decay ** floor(step / (lr_decay_epochs * steps_per_epoch))``, counted from step 0 as the TF
    reference (``tf.train.exponential_decay(staircase=True)``) does; cosine: DARTS's cosine over the epochs after
    the warm-up, to ``lr_min``, per epoch."""
    warmup_steps = config.warmup_epochs * steps_per_epoch
    if step < warmup_steps:
        return step / warmup_steps
    if config.schedule == "step-exp":
        return config.lr_decay ** math.floor(step / (config.lr_decay_epochs * steps_per_epoch))
    epoch, span = step // steps_per_epoch - config.warmup_epochs, config.epochs - config.warmup_epochs
    progress = epoch / span if span > 0 else 1.0
    lr = config.lr_min + (config.lr - config.lr_min) * (1 + math.cos(math.pi * progress)) / 2
    return lr / config.lr


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """DARTS's per-epoch cosine (stepped once an epoch) or a per-step ``LambdaLR`` of :func:`lr_factor` (stepped
    after every optimiser step); see :attr:`TrainConfig.per_step_schedule`."""
    if not config.per_step_schedule:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs, eta_min=config.lr_min)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, steps_per_epoch))


class WeightEMA:
    """An exponential moving average of a network's weights and batch-norm statistics, updated after every
    optimiser step with decay ``min(decay, (1 + t) / (10 + t))`` at update t = 1, 2, ... (TF's
    ``ExponentialMovingAverage(decay, num_updates=global_step)``, so that short runs average over their own steps,
    not the random initialisation). ``network`` is the averaged copy, always in eval mode; integer buffers (batch
    norm's step counters) are copied."""

    def __init__(self, model: nn.Module, decay: float):
        self.network = copy.deepcopy(model).eval()
        self.network.requires_grad_(False)
        self.decay, self.updates = decay, 0
        self.weight = torch.zeros((), device=next(model.parameters()).device)
        """1 - the decay of the coming update, on the device (:meth:`advance` sets it, :meth:`apply` reads it)."""

    def update(self, model: nn.Module) -> None:
        """One update: :meth:`advance` then :meth:`apply`."""
        self.advance()
        self.apply(model)

    def advance(self) -> None:
        """Counts the coming update and sets its decay (host side, outside a captured step)."""
        self.updates += 1
        self.weight.fill_(1 - min(self.decay, (1 + self.updates) / (10 + self.updates)))

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Moves the average towards ``model`` by the weight :meth:`advance` set (device side, capturable)."""
        averaged, current = self.network.state_dict(), model.state_dict()
        for key, value in averaged.items():
            if value.is_floating_point():
                value.lerp_(current[key].detach(), self.weight.to(value.dtype))
        for key, value in averaged.items():
            if not value.is_floating_point():
                value.copy_(current[key])

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        updates = state["updates"]
        if type(updates) is not int or updates < 0:
            raise ValueError("EMA update counter")
        self.updates = updates


def add_classifier_dropout(model: nn.Module, p: float):
    """Dropout (probability ``p``, training mode only) on the pooled features the classifier reads, as MnasNet has
    before its last layer: a forward pre-hook on ``model.classifier``, so the network itself (its files, export,
    evaluation) is unchanged. A network whose classifier carries its own dropout (chain networks build it from their
    head's setting) keeps that one and gets none added. Returns the hook's handle, or None when none was added."""
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, nn.Module):
        raise SettingError("the network has no classifier to put dropout before", "train with {dropout} 0")
    if any(isinstance(m, nn.Dropout) for m in classifier.modules()):
        return None

    def dropout(module: nn.Module, args: tuple):
        return (F.dropout(args[0], p, module.training),) + tuple(args[1:])

    return classifier.register_forward_pre_hook(dropout)
