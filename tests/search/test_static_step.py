"""The CPU proof of the captured search step (issue 29): the step a CUDA graph captures (device-side learning rates
and beta, capturable optimisers, the architecture step without host reads, static input buffers, metrics read once
per interval), run eagerly, equals the DARTS- step as dmc ran it before, written here with torch's own optimisers
and host floats, to the bit: over several steps, across epoch boundaries (learning rate, beta, the architecture
warm-up), in first and second order, with P-DARTS's random skip dropout and PC-DARTS's channel shuffle. A whole
search with static steps equals an eager one, through a kill and resume."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from dmc.distributed import distributed
from dmc.run_lifecycle import RunLifecycle
from dmc.runfolder import SEARCH_RUN, RunFolder
from dmc.search import SearchConfig, read_history, search
from dmc.search.run import _SearchTask
from dmc.space import load_space

SMALL = dict(space="tiny", batch_size=8, channels=4, layers=3, deterministic=True)


@pytest.fixture(scope="module")
def tiny(toy_data):
    return dict(SMALL, dataset=toy_data)


def reference_unrolled_grads(model, x, y, x_val, y_val, lr: float, w_opt, momentum: float, weight_decay: float,
                             fd_radius: float = 1e-2) -> list[torch.Tensor]:
    """DARTS's second-order alpha gradient as dmc computed it before its step became capturable: host floats for
    the learning rate and the finite-difference radius (``.item()``), ``add_(alpha=...)`` for the shifts."""
    weights, arch = model.weight_parameters(), model.arch_parameters()

    def loss(a, b):
        return F.cross_entropy(model(a), b)

    g_train = torch.autograd.grad(loss(x, y), weights)
    with torch.no_grad():
        step = []
        for w, g in zip(weights, g_train):
            buf = w_opt.state.get(w, {}).get("momentum_buffer")
            d = g + weight_decay * w
            step.append(d if buf is None else d + momentum * buf)
        original = [w.detach().clone() for w in weights]
        torch._foreach_add_(weights, step, alpha=-lr)
    grads = torch.autograd.grad(loss(x_val, y_val), arch + weights)
    d_alpha, d_w = list(grads[: len(arch)]), [g.detach() for g in grads[len(arch):]]
    with torch.no_grad():
        torch._foreach_copy_(weights, original)
        r = fd_radius / torch.cat([g.flatten() for g in d_w]).norm().clamp_min(1e-12).item()
        torch._foreach_add_(weights, d_w, alpha=r)
    g_pos = torch.autograd.grad(loss(x, y), arch)
    with torch.no_grad():
        torch._foreach_add_(weights, d_w, alpha=-2 * r)
    g_neg = torch.autograd.grad(loss(x, y), arch)
    with torch.no_grad():
        torch._foreach_copy_(weights, original)
    return [da - lr * (gp - gn) / (2 * r) for da, gp, gn in zip(d_alpha, g_pos, g_neg)]


class ReferenceStep:
    """dmc's search step before issue 29, on a copy of the task's supernet: torch's SGD and Adam, host floats."""

    def __init__(self, task: _SearchTask):
        config = self.config = task.config
        self.model = copy.deepcopy(task.model)
        self.w_opt = torch.optim.SGD(self.model.weight_parameters(), config.lr, momentum=config.momentum,
                                     weight_decay=config.weight_decay)
        self.a_opt = torch.optim.Adam(self.model.arch_parameters(), config.arch_lr, betas=tuple(config.arch_betas),
                                      weight_decay=config.arch_weight_decay)

    def begin_epoch(self, task: _SearchTask) -> None:
        self.model.set_beta(task.beta)
        self.model.set_skip_dropout(task.skip_dropout)
        self.model.train()
        for group in self.w_opt.param_groups:
            group["lr"] = task.lr

    def __call__(self, batch, epoch: int, lr: float) -> tuple[float, int]:
        (x, y), (x_val, y_val) = batch
        config, model = self.config, self.model
        if epoch >= config.arch_warmup:
            self.a_opt.zero_grad(set_to_none=True)
            arch = model.arch_parameters()
            if config.order == 1:
                F.cross_entropy(model(x_val), y_val).backward(inputs=arch)
            else:
                grads = reference_unrolled_grads(model, x, y, x_val, y_val, lr, self.w_opt, config.momentum,
                                                 config.weight_decay)
                for p, g in zip(arch, grads):
                    p.grad = g
            self.a_opt.step()
        self.w_opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward(inputs=model.weight_parameters())
        torch.nn.utils.clip_grad_norm_(model.weight_parameters(), config.grad_clip)
        self.w_opt.step()
        return loss.item(), int((logits.argmax(1) == y).sum())


def assert_same_state(task: _SearchTask, reference: ReferenceStep, where: str) -> None:
    for (name, a), b in zip(task.model.state_dict().items(), reference.model.state_dict().values()):
        assert torch.equal(a, b), f"{where}: {name}"
    for mine, theirs in ((task.w_opt, reference.w_opt), (task.a_opt, reference.a_opt)):
        for p, q in zip(mine.param_groups[0]["params"], theirs.param_groups[0]["params"]):
            for key, value in theirs.state[q].items():
                assert torch.equal(mine.state[p][key].cpu(), value.cpu()), f"{where}: optimizer {key}"


@pytest.mark.parametrize("settings", [
    dict(order=1),
    dict(order=2, arch_warmup=1),
    dict(order=1, skip_dropout=(0.4,), beta_schedule="step", beta_stop=2),
    dict(order=2, method="pc-darts", partial_channels=2),
], ids=["first-order", "second-order-warmup", "skip-dropout-beta-to-0", "pc-darts-second-order"])
def test_the_static_step_equals_the_eager_step_before_it_to_the_bit(tmp_path, tiny, settings):
    config = SearchConfig(**{**tiny, "epochs": 3, "seed": 5, "cuda_graphs": "static", **settings}).validate()
    space = load_space(config.space).with_macro(channels=config.channels, layers=config.layers)
    with distributed() as process:
        process = process.with_device("cpu")
        lifecycle = RunLifecycle(RunFolder(tmp_path / "run", SEARCH_RUN), process, config.epochs, config.seed,
                                 config.deterministic, None)
        task = lifecycle.build(lambda: _SearchTask(config, space, lifecycle))
        reference = ReferenceStep(task)
        assert task.steps.mode == "static" and task.read_every > 1
        steps = 0
        for epoch in range(config.epochs):  # the epoch boundaries change lr and beta, and start the arch steps
            batches, _ = task.begin_epoch(epoch)
            reference.begin_epoch(task)
            for batch in batches:
                rng = torch.get_rng_state()
                output = task.step(batch)
                torch.set_rng_state(rng)  # the same draws for the reference (skip dropout)
                loss, correct = reference(batch, epoch, task.lr)
                assert output.loss.item() == loss and int(output.correct) == correct
                assert_same_state(task, reference, f"epoch {epoch}, step {steps}")
                steps += 1
            task.scheduler.step()
        assert steps >= 6 and task.beta != 1.0


def test_a_static_search_equals_an_eager_one_and_resumes_exactly(tmp_path, tiny):
    config = dict(tiny, epochs=3, seed=3, order=2)
    search(SearchConfig(**config, cuda_graphs="off"), tmp_path / "eager")
    search(SearchConfig(**config, cuda_graphs="static"), tmp_path / "static")

    def kill_mid_epoch(kind, **info):
        if kind == "step" and info["epoch"] == 1 and info["step"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search(SearchConfig(**config, cuda_graphs="static"), tmp_path / "resumed", on_event=kill_mid_epoch)
    search(SearchConfig(), tmp_path / "resumed", resume=True)

    runs = {name: SEARCH_RUN.load(tmp_path / name / "last.pt") for name in ("eager", "static", "resumed")}
    for name in ("static", "resumed"):
        for key, value in runs["eager"]["model"].items():
            assert torch.equal(value, runs[name]["model"][key]), (name, key)
        for key in ("w_opt", "a_opt"):
            assert str(runs["eager"][key]) == str(runs[name][key]), (name, key)
        history = read_history(tmp_path / name)
        for a, b in zip(read_history(tmp_path / "eager"), history, strict=True):
            a.pop("seconds"), b.pop("seconds")
            assert a == b, name
