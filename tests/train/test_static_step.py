"""The CPU proof of the captured training step (issue 29): training with static steps (device learning rates and
EMA decay, capturable SGD/RMSpropTF, static input buffers, metrics read once per interval) equals eager training
to the bit, with drop-path's random draws, the auxiliary head, the imagenet recipe's per-step schedule and weight
EMA, and through a kill and resume. That the capturable optimisers and the EMA compute what the eager ones did is
``tests/cuda_graphs/test_optimizers.py`` and the oracles below."""

from __future__ import annotations

import copy

import pytest
import torch

from dmc.genotype import published_genotypes
from dmc.runfolder import read_history
from dmc.train import TrainConfig, load_train_checkpoint, train
from dmc.train.optim import RMSpropTF, WeightEMA

DARTS_V2 = published_genotypes()["DARTS_V2"]
SMALL = dict(channels=4, layers=3, batch_size=6, cutout=4, deterministic=True, drop_path=0.3)


def same_runs(a, b) -> None:
    first, second = load_train_checkpoint(a / "last.pt"), load_train_checkpoint(b / "last.pt")
    for part in ("model", *(("train_model",) if "train_model" in first else ())):
        for key, value in first[part].items():
            assert torch.equal(value, second[part][key]), (part, key)
    assert str(first["optimizer"]) == str(second["optimizer"])
    history = [read_history(a), read_history(b)]
    for record in history[0] + history[1]:
        record.pop("seconds")
    assert history[0] == history[1]


def test_static_training_equals_eager_training_and_resumes_exactly(tmp_path, toy_data):
    config = dict(epochs=3, **SMALL)
    train(DARTS_V2, TrainConfig.for_dataset(toy_data, **config, cuda_graphs="off"), tmp_path / "eager")
    train(DARTS_V2, TrainConfig.for_dataset(toy_data, **config, cuda_graphs="static"), tmp_path / "static")
    same_runs(tmp_path / "eager", tmp_path / "static")

    def kill(kind, **info):
        if kind == "step" and info["epoch"] == 1 and info["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(DARTS_V2, TrainConfig.for_dataset(toy_data, **config, cuda_graphs="static"), tmp_path / "resumed",
              on_event=kill)
    train(None, TrainConfig(), tmp_path / "resumed", resume=True)
    same_runs(tmp_path / "eager", tmp_path / "resumed")


def test_static_training_with_the_imagenet_recipe_equals_eager_training(tmp_path, toy_data):
    config = dict(recipe="imagenet", image_size=32, channels=4, layers=3, batch_size=4, val_portion=0.25,
                  lr=0.05, warmup_epochs=1, auxiliary=False, deterministic=True, epochs=2, ema_decay=0.99,
                  dropout=0.2)
    for mode in ("off", "static"):
        train(DARTS_V2, TrainConfig.for_dataset(toy_data, **config, cuda_graphs=mode), tmp_path / mode)
    assert TrainConfig.for_dataset(toy_data, **config).per_step_schedule
    same_runs(tmp_path / "off", tmp_path / "static")


def test_rmsprop_tf_equals_its_host_learning_rate_formula_to_the_bit():
    """The oracle: RMSpropTF as dmc wrote it before the learning rate moved to the device."""
    g = torch.Generator().manual_seed(0)
    mine = [torch.randn(s, generator=g).requires_grad_() for s in [(8, 4, 3, 3), (50,)]]
    theirs = [p.detach().clone() for p in mine]
    optimizer = RMSpropTF([{"params": mine[:1], "weight_decay": 1e-5}, {"params": mine[1:], "weight_decay": 0.0}],
                          0.016, eps=1e-3)
    ms = [torch.ones_like(p) for p in theirs]
    mom = [torch.zeros_like(p) for p in theirs]
    for k in range(5):
        lr = 0.016 * 0.97 ** k
        grads = [torch.randn(p.shape, generator=g) for p in mine]
        for p, grad in zip(mine, grads):
            p.grad = grad.clone()
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.sync_lr()
        optimizer.step()
        for i, (decay, grad) in enumerate(zip((1e-5, 0.0), grads)):
            grad = grad + decay * theirs[i] if decay else grad
            ms[i].mul_(0.9).addcmul_(grad, grad, value=0.1)
            mom[i].mul_(0.9).addcdiv_(grad, (ms[i] + 1e-3).sqrt(), value=lr)
            theirs[i].sub_(mom[i])
    for a, b in zip(mine, theirs):
        assert torch.equal(a.detach(), b)


def test_the_weight_ema_equals_its_host_decay_formula_to_the_bit():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ema, reference = WeightEMA(model, 0.999), copy.deepcopy(model).eval()
    for t in range(1, 8):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(torch.randn(2, 3, 6, 6))
        ema.update(model)
        decay = min(0.999, (1 + t) / (10 + t))
        averaged, current = reference.state_dict(), model.state_dict()
        floats = [k for k, v in averaged.items() if v.is_floating_point()]
        torch._foreach_lerp_([averaged[k] for k in floats], [current[k] for k in floats], 1 - decay)
        for k, v in averaged.items():
            if not v.is_floating_point():
                v.copy_(current[k])
        for a, b in zip(ema.network.state_dict().values(), reference.state_dict().values()):
            assert torch.equal(a, b)
