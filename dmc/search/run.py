"""The DARTS- search loop (Algorithm 1): run folders, history, checkpoints and exact resume.

The run folder (:mod:`dmc.runfolder`) holds ``best.pt`` by validation accuracy on the architecture half and
``genotype.json`` derived from it at the end. Writes are crash-consistent: a run killed at any instant
resumes to the uninterrupted result.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from dmc.bench import NB201Bench
from dmc.chain_genotype import ChainGenotype
from dmc.chain_space import ChainSpace
from dmc.data import check_dataset, image_side, load_dataset
from dmc.derive import node_edge_weights
from dmc.distributed import MIN_BATCH, Distributed, ShardedBatches, convert_sync_batchnorm, distributed
from dmc.errors import InvalidInputError
from dmc.genotype import Genotype
from dmc.kernels import select_kernels
from dmc.out_of_memory import out_of_memory_as, smaller
from dmc.runfolder import SEARCH_RUN, RunFolder, check_world_size, finished_message, restoring, written
from dmc.runtime import (
    check_finite,
    dataset_size,
    evaluate,
    resolve_device,
    seed_everything,
)
from dmc.search.architect import Architect
from dmc.search.config import SearchConfig
from dmc.search.derive_run import derive_run
from dmc.search.hessian import hessian_eigenvalue
from dmc.search.progressive import progressive_search
from dmc.search.skip_dropout import skip_dropout_rate
from dmc.space import SearchSpace, load_space
from dmc.supernet import Supernet, build_supernet, compile_backend, compile_edges
from dmc.version import __version__

EventHandler = Callable[..., None]
"""Called as ``on_event(kind, **info)`` with kind ``epoch_start`` (epoch, epochs, steps), ``step``
(epoch, step, steps, loss), ``epoch_end`` (record) or ``status`` (message)."""


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    best_epoch: int
    best_val_acc: float
    genotype: Genotype | ChainGenotype
    """Derived from the best-validation checkpoint (Algorithm 1, line 6)."""


class _Run:
    """State of one search run; :func:`search` drives it."""

    def __init__(self, config: SearchConfig, run_dir: Path, space: SearchSpace | ChainSpace,
                 on_event: EventHandler | None, process: Distributed):
        self.config, self.run_dir, self.space, self.process = config, run_dir, space, process
        self.on_event = on_event or (lambda kind, **info: None)
        self.device = process.device
        seed_everything(config.seed, config.deterministic)
        process.everywhere(self._prepare)  # local work only: an error in it is reported once, by rank 0
        if config.sync_bn and process.active:
            convert_sync_batchnorm(self.model)
        self._configure_execution()
        process.broadcast_(self.model.arch_parameters())
        self.trained = process.data_parallel(self.model, ignore=self.model.arch_parameter_names())
        """The forward of the weight step: the supernet, wrapped in DDP on several processes."""
        if process.active:  # independent augmentation draws per process (the model above is the same everywhere)
            seed_everything(config.seed + 7919 * process.rank, config.deterministic)
        self.w_opt = torch.optim.SGD(self.model.weight_parameters(), config.lr, momentum=config.momentum,
                                     weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, config.epochs, eta_min=config.lr_min)
        self.a_opt = torch.optim.Adam(self.model.arch_parameters(), config.arch_lr,
                                      betas=(config.arch_betas[0], config.arch_betas[1]),
                                      weight_decay=config.arch_weight_decay)
        self.architect = Architect(self.model, self.a_opt, config.order, config.momentum, config.weight_decay,
                                   average=process.average_)
        self.epoch, self.best_val_acc, self.best_epoch = 0, -1.0, -1

    def _prepare(self) -> None:
        """The data, its two halves' loaders and the supernet."""
        config, process = self.config, self.process
        data = load_dataset(config.dataset, config.data_root, augment=config.augment, image_size=config.image_size)
        self.data = data
        order = torch.randperm(dataset_size(data.train), generator=torch.Generator().manual_seed(config.seed)).tolist()
        split = int(len(order) * config.train_portion)
        if split < 1 or split >= len(order):
            raise InvalidInputError(f"train_portion {config.train_portion} leaves an empty half of "
                                    f"{len(order)} training images")
        halves = (order[:split], order[split:])
        self.samplers = [ShardedBatches(len(part), config.batch_size, config.seed + i, process.rank,
                                        process.world_size, min_share=MIN_BATCH) for i, part in enumerate(halves)]
        self.loaders = [DataLoader(Subset(data.train, part), batch_sampler=sampler, num_workers=config.num_workers,
                                   pin_memory=self.device.type == "cuda")
                        for part, sampler in zip(halves, self.samplers)]
        # every image of the architecture half, shared out (the samplers cut a last global batch for the steps)
        self.val_loader = DataLoader(process.shard(Subset(data.train, halves[1])), config.batch_size,
                                     num_workers=config.num_workers, pin_memory=self.device.type == "cuda")
        self.hessian_subset = Subset(data.train, order[split:][: config.hessian_samples])
        pc = config.method == "pc-darts"
        self.model: Supernet = build_supernet(self.space, data.num_classes, data.in_channels,
                                              partial_channels=config.partial_channels if pc else 1,
                                              channel_shuffle=pc and config.channel_shuffle,
                                              edge_normalization=pc).to(self.device)
        self.model.check_input_size(data.image_size, data.image_size)  # before any step, in one line

    def _configure_execution(self) -> None:
        """Kernels, memory format, recomputation and compilation: how the supernet runs, not what it computes."""
        config = self.config
        status = lambda message: self.on_event("status", message=message)  # noqa: E731
        kernels = select_kernels(config.kernels, self.device, status)
        self.kernels = kernels.kind
        self.model.set_kernels(kernels)
        self.model.set_channels_last(config.channels_last)
        self.model.set_recompute_edges(config.recompute_edges)
        self.compile_backend = compile_backend(self.device) if config.compile else None
        if self.compile_backend is not None:
            status(f"compiling mixed edges with torch.compile ({self.compile_backend}) during the first steps")
            compile_edges(self.model, self.compile_backend)

    def describe(self) -> str:
        """The start-up line: what is searched, at which image size, network size and batch, with whose defaults."""
        config, process, size = self.config, self.process, self.data.image_size
        weights = sum(p.numel() for p in self.model.weight_parameters())
        batch = process.describe_batch(config.batch_size)
        defaults = f"{self.space.name}'s own" if self.space.search_defaults else "DARTS's"
        return (f"searching {self.space.name} ({self.space.summary}, {weights:,} weights) on {self.data.name}: "
                f"{size}x{size} images, {batch}, {config.epochs} epochs; {defaults} search settings; on {self.device}")

    # ------------------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        """The checkpoint (called on every process: it gathers their random generators)."""
        return {"epoch": self.epoch, "model": self.model.state_dict(), "w_opt": self.w_opt.state_dict(),
                "a_opt": self.a_opt.state_dict(), "scheduler": self.scheduler.state_dict(),
                **self.process.rng_states(), "world_size": self.process.world_size,
                "best_val_acc": self.best_val_acc, "best_epoch": self.best_epoch,
                "space_hash": self.space.content_hash, "config": self.config.to_dict(), "dmc_version": __version__}

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("space_hash") != self.space.content_hash:
            raise InvalidInputError(f"{self.run_dir}: the checkpoint was searched in another space",
                                    "resume with the run folder's own space.yaml")
        check_world_size(state, self.process, self.run_dir)
        with restoring(self.run_dir, "this supernet"):
            self.model.load_state_dict(state["model"])
            self.w_opt.load_state_dict(state["w_opt"])
            self.a_opt.load_state_dict(state["a_opt"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.process.restore_rng_states(state)
            self.best_val_acc = float(state["best_val_acc"])
        self.epoch, self.best_epoch = state["epoch"], state["best_epoch"]

    # ------------------------------------------------------------------------------- epochs
    def train_epoch(self, lr: float) -> tuple[float, float]:
        """Mean loss and accuracy over the epoch's training batches (of every process)."""
        self.model.train()
        for sampler in self.samplers:
            sampler.set_epoch(self.epoch)
        steps = min(len(loader) for loader in self.loaders)
        self.on_event("epoch_start", epoch=self.epoch, epochs=self.config.epochs, steps=steps)
        total_loss, correct, seen = 0.0, 0, 0
        for step, ((x, y), (x_val, y_val)) in enumerate(zip(*self.loaders)):
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            x_val, y_val = x_val.to(self.device, non_blocking=True), y_val.to(self.device, non_blocking=True)
            if self.epoch >= self.config.arch_warmup:
                self.architect.step(x, y, x_val, y_val, lr, self.w_opt)  # alpha on the validation half
            self.w_opt.zero_grad(set_to_none=True)
            logits = self.trained(x)  # (B, classes)
            loss = F.cross_entropy(logits, y)
            if self.process.active:  # DDP's averaging hooks fire only in a full backward; the alphas' gradients
                loss.backward()      # it also computes are dropped by the next architecture step
            else:
                loss.backward(inputs=self.model.weight_parameters())
            torch.nn.utils.clip_grad_norm_(self.model.weight_parameters(), self.config.grad_clip)
            value = check_finite(loss.item(), "the training loss", self.epoch, step + 1, self.run_dir)
            self.w_opt.step()
            total_loss += value * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            self.on_event("step", epoch=self.epoch, step=step + 1, steps=steps, loss=value)
            written(f"step@{self.epoch}.{step + 1}")
        summed_loss, summed_correct, summed_seen = self.process.sum([total_loss, correct, seen])
        return summed_loss / max(summed_seen, 1), summed_correct / max(summed_seen, 1)

    def evaluate(self) -> tuple[float, float]:
        """Loss and accuracy on the whole architecture (validation) half, with rank 0's batch-norm statistics."""
        self.process.broadcast_buffers(self.model)
        return evaluate(self.model, self.val_loader, self.device, self.process.sum)

    @functools.cached_property
    def bench(self) -> NB201Bench | None:
        """The NAS-Bench-201 archive each epoch's cell is looked up in (read by rank 0 only)."""
        return None if self.config.bench is None or not self.process.is_main else NB201Bench(self.config.bench)

    def hessian_due(self, epoch: int) -> bool:
        every = self.config.hessian_every
        return every > 0 and ((epoch + 1) % every == 0 or epoch + 1 == self.config.epochs)

    def hessian_eigenvalue(self) -> float:
        """On :attr:`hessian_batches`; RNG, BN statistics, mode and kernels untouched
        (:func:`dmc.search.hessian.hessian_eigenvalue`)."""
        return hessian_eigenvalue(self.model, self.hessian_batches, self.config.hessian_iterations,
                                  seed=self.config.seed, average=self.process.average_)

    @functools.cached_property
    def hessian_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``hessian_samples`` images of the architecture half, loaded (and augmented, with a fixed seed
        inside a forked RNG) once per process: every measurement sees the same batches, a resumed run too."""
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.config.seed)
            return [(x.to(self.device), y.to(self.device))
                    for x, y in DataLoader(self.hessian_subset, batch_size=self.config.batch_size)]


def _start(config: SearchConfig, folder: RunFolder, resume: bool) -> tuple[SearchConfig, SearchSpace | ChainSpace]:
    if resume:
        saved = folder.read_config()
        return SearchConfig.from_dict(saved["config"], str(folder.config_path)), folder.read_space()
    config.validate()
    space = load_space(config.space).with_macro(channels=config.channels, layers=config.layers, width=config.width)
    if config.method != "darts" and isinstance(space, ChainSpace):
        raise InvalidInputError(f"{space.name} is a chain space: --method {config.method} is defined for cell spaces",
                                "search it with --method darts")
    if config.method == "p-darts":
        for layers in config.stage_layers:  # every stage's depth fits the macro, before anything is written
            space.with_macro(layers=layers)
    if config.bench is not None:
        if space.kind != "nb201":
            raise InvalidInputError(f"--bench looks cells up in NAS-Bench-201; {space.name} is not its space",
                                    "search the nb201 space, or drop --bench")
        NB201Bench(config.bench)  # the archive's meta file reads, before anything is written
    check_dataset(config.dataset, config.data_root)
    device = resolve_device(config.device)
    if config.kernels == "fused":  # built and checked now: a failure leaves no run folder ("auto" falls back)
        select_kernels("fused", device)
    folder.claim()
    folder.write_space(space)
    return config, space


def search(config: SearchConfig, run_dir: str | Path, resume: bool = False,
           on_event: EventHandler | None = None) -> SearchResult:
    """Runs (or, with ``resume``, continues) a DARTS- search into ``run_dir``; see the module docstring.

    A resumed run reproduces the uninterrupted one: the checkpoint holds the weights, alphas, both
    optimisers, the LR scheduler and every RNG, and the data order depends only on (seed, epoch).

    Launched on several processes (torchrun, a Slurm step, ``dmc search --nproc``), every process calls this:
    they search together (:mod:`dmc.distributed`), rank 0 writes the run folder and gets the events, and every
    process returns the same result.
    """
    folder = RunFolder(run_dir, SEARCH_RUN)
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    with distributed() as process:
        config, space = process.on_main(lambda: _start(config, folder, resume))
        if config.method == "p-darts":  # stages of ordinary searches, in stage folders
            assert isinstance(space, SearchSpace), "_start refuses p-darts on a chain space"
            genotype, stages = progressive_search(config, folder, space, process, search,
                                                  on_event if process.is_main else None)
            return SearchResult(folder.path, stages[-1].best_epoch, stages[-1].best_val_acc, genotype)
        process = process.with_device(config.device)
        try:
            with out_of_memory_as(*_memory_advice(config, space, process.device)):
                return _search(config, folder, space, resume, on_event if process.is_main else None, process)
        finally:
            torch.use_deterministic_algorithms(deterministic_before)


def _search(config: SearchConfig, folder: RunFolder, space: SearchSpace | ChainSpace, resume: bool,
            on_event: EventHandler | None, process: Distributed) -> SearchResult:
    from torch.utils.tensorboard import SummaryWriter

    run_dir = folder.path
    run = _Run(config, run_dir, space, on_event, process)
    run.on_event("status", message=run.describe())
    state = process.on_main(folder.resume_state) if resume else None
    if state is not None:
        run.load_state(state)
        if run.epoch >= config.epochs:
            run.on_event("status", message=finished_message(run_dir, config.epochs))

    def start_folder() -> None:
        folder.keep_history(run.epoch)
        folder.write_config({
            "config": config.to_dict(), "space": space.name, "space_hash": space.content_hash,
            "dataset": run.data.describe(), "device": str(run.device), "world_size": process.world_size,
            "kernels": run.kernels, "compile_backend": run.compile_backend, "dmc_version": __version__})

    process.on_main(start_folder)

    writer = SummaryWriter(str(run_dir / "tb"), purge_step=run.epoch) if process.is_main else None
    try:
        while run.epoch < config.epochs:
            epoch, started = run.epoch, time.perf_counter()
            beta = config.beta(epoch, config.epochs)
            run.model.set_beta(beta)
            if config.skip_dropout:
                run.model.set_skip_dropout(skip_dropout_rate(config.skip_dropout[0], epoch, config.epochs,
                                                             config.arch_warmup))
            lr = float(run.scheduler.get_last_lr()[0])
            train_loss, train_acc = run.train_epoch(lr)
            val_loss, val_acc = run.evaluate()
            check_finite(val_loss, "the validation loss", epoch, None, run_dir)
            genotype = run.model.genotype()
            record = {
                "epoch": epoch, "beta": beta, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                "val_loss": val_loss, "val_acc": val_acc,
                "alphas": {c: [w.tolist() for w in ws] for c, ws in run.model.edge_weights().items()},
                "genotype": genotype.to_dict(),
            }
            edge_norms = run.model.edge_norms()
            if edge_norms is not None:  # PC-DARTS: each edge's weight among its node's incoming edges
                assert isinstance(space, SearchSpace), "_start refuses pc-darts on a chain space"
                record["edge_norm"] = {g: node_edge_weights(v.detach(), space).tolist() for g, v in edge_norms.items()}
            if run.hessian_due(epoch):
                record["hessian_eigenvalue"] = run.hessian_eigenvalue()
            if run.bench is not None:
                record["nb201"] = process.on_main(nb201_record, run.bench, genotype)
            record["seconds"] = time.perf_counter() - started
            run.scheduler.step()
            run.epoch = epoch + 1
            improved = val_acc > run.best_val_acc
            if improved:
                run.best_val_acc, run.best_epoch = val_acc, epoch
            state = run.state()
            process.on_main(folder.end_epoch, epoch, record, state, improved)
            if writer is not None:
                _log_tensorboard(writer, record)
            run.on_event("epoch_end", record=record)
    finally:
        if writer is not None:
            writer.close()

    def derive_and_write() -> Genotype | ChainGenotype:
        genotype = derive_run(run_dir, "best")
        folder.write_result("genotype.json", genotype.save)
        return genotype

    return SearchResult(run_dir, run.best_epoch, run.best_val_acc, process.on_main(derive_and_write))


def _memory_advice(config: SearchConfig, space: SearchSpace | ChainSpace, device: torch.device) -> tuple[str, str]:
    """(what ran out, how to shrink it) for a search that runs out of memory."""
    network = ["--width"] if isinstance(space, ChainSpace) else ["--channels", "--layers"]
    size = image_side(config.dataset, config.image_size)
    return (f"out of memory searching {space.name} ({space.summary}) at batch {config.batch_size} of "
            f"{size}x{size} images on {device}",
            f"start a new search with {smaller(['--batch-size', '--image-size', *network])}, or --recompute-edges")


def nb201_record(bench: NB201Bench, genotype: Genotype) -> dict[str, Any]:
    """What history.jsonl records of an epoch's cell in NAS-Bench-201: its index, and per dataset the mean valid
    and test accuracy (%) after 200 epochs."""
    result = bench.lookup(genotype)
    return {"index": result.index, **{d.dataset: {"valid": d.valid.mean, "test": d.test.mean}
                                      for d in result.datasets}}


def _log_tensorboard(writer, record: dict[str, Any]) -> None:
    epoch = record["epoch"]
    for key in ("beta", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "hessian_eigenvalue"):
        if key in record:
            writer.add_scalar(key, record[key], epoch)
    for dataset, accuracies in record.get("nb201", {}).items():
        if dataset != "index":
            writer.add_scalars(f"nb201/{dataset}", accuracies, epoch)
    for group, rows in record["alphas"].items():
        row = "layer" if group == "layers" else "edge"
        for e, weights in enumerate(rows):
            writer.add_scalars(f"alpha_{group}/{row}_{e:02d}", {str(k): w for k, w in enumerate(weights)}, epoch)
    writer.flush()


def search_seeds(config: SearchConfig, run_dir: str | Path, seeds: list[int], resume: bool = False,
                 on_event: EventHandler | None = None) -> list[SearchResult]:
    """Independent searches, one per seed, in ``run_dir/seed-<s>``."""
    results = []
    for seed in seeds:
        seeded = SearchConfig.from_dict({**config.to_dict(), "seed": seed})
        results.append(search(seeded, Path(run_dir) / f"seed-{seed}", resume, on_event))
    return results
