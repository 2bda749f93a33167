"""The DARTS- search loop (Algorithm 1): its steps, its epochs' records and its result, in the run lifecycle
(:mod:`dmc.run_lifecycle`: run folders, history, checkpoints and exact resume) that training shares.

The run folder (:mod:`dmc.runfolder`) holds ``best.pt`` by validation accuracy on the architecture half and
``genotype.json`` derived from it at the end. Writes are crash-consistent: a run killed at any instant
resumes to the uninterrupted result.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from dmc.bench import NB201Bench
from dmc.cuda_graphs import (
    CapturableAdam,
    CapturableSGD,
    StepGraphs,
    check_cuda_graphs,
    read_interval,
    step_mode,
    step_state,
)
from dmc.data import check_dataset, image_side, load_dataset
from dmc.distributed import MIN_BATCH, Distributed, ShardedBatches, convert_sync_batchnorm, distributed
from dmc.errors import InvalidInputError, SettingError
from dmc.families import AnyGenotype, AnySpace, SearchBlockOptions, family_of
from dmc.families.cell.derive import node_edge_weights
from dmc.families.cell.genotype import Genotype
from dmc.families.cell.space import CellSpace
from dmc.families.settings import SIZE_SETTINGS
from dmc.kernels import select_kernels
from dmc.optimizer_order import load_optimizer_state, optimizer_state
from dmc.out_of_memory import out_of_memory_as, smaller
from dmc.run_lifecycle import EventHandler, RunLifecycle, StepOutput, determinism_kept
from dmc.runfolder import SEARCH_RUN, RunFolder
from dmc.runtime import dataset_size, resolve_device
from dmc.search.architect import Architect
from dmc.search.config import SearchConfig
from dmc.search.cost import CostTable, counted_cost_table, latency_cost_table
from dmc.search.cost_rules import cost_loss, parse_cost
from dmc.search.derive_run import derive_run
from dmc.search.hessian import hessian_eigenvalue
from dmc.search.progressive import progressive_search
from dmc.search.skip_dropout import skip_dropout_rate
from dmc.space import load_space
from dmc.supernet import Supernet, build_supernet, compile_backend, compile_edges
from dmc.version import __version__


@dataclass(frozen=True)
class SearchResult:
    run_dir: Path
    best_epoch: int
    best_val_acc: float
    genotype: AnyGenotype
    """Derived from the best-validation checkpoint (Algorithm 1, line 6)."""


class _SearchTask:
    """What a search does of its own: the weight and architecture steps, and per epoch the schedules, the
    evaluation and what the history records of the alphas; :class:`dmc.run_lifecycle.RunLifecycle` drives it."""

    restored_what = "this supernet"

    def __init__(self, config: SearchConfig, space: AnySpace, lifecycle: RunLifecycle):
        process = lifecycle.process
        self.config, self.space, self.process, self.lifecycle = config, space, process, lifecycle
        self.device = process.device
        process.everywhere(self._prepare)  # local work only: an error in it is reported once, by rank 0
        if config.sync_bn and process.active:
            convert_sync_batchnorm(self.model)
        self._configure_execution()
        process.broadcast_(self.model.arch_parameters())
        self.trained = process.data_parallel(self.model, ignore=self.model.arch_parameter_names())
        """The forward of the weight step: the supernet, wrapped in DDP on several processes."""
        self.w_opt = CapturableSGD(self.model.weight_parameters(), config.lr, momentum=config.momentum,
                                   weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, config.epochs, eta_min=config.lr_min)
        self.a_opt = CapturableAdam(self.model.arch_parameters(), config.arch_lr,
                                    betas=(config.arch_betas[0], config.arch_betas[1]),
                                    weight_decay=config.arch_weight_decay)
        self.architect = Architect(self.model, self.a_opt, config.order, config.momentum, config.weight_decay,
                                   average=process.average_,
                                   val_loss=None if self.cost is None else self._val_loss)
        self.epoch, self.beta, self.lr, self.skip_dropout = 0, 0.0, 0.0, 0.0
        """The epoch running, its beta, learning rate and skip-dropout rate."""
        mode = step_mode(config.cuda_graphs, self.device, process.world_size, lifecycle.status)
        self.steps = StepGraphs(self._step_on_device, mode, self.device, status=lifecycle.status,
                                state=lambda: step_state([self.model], [self.w_opt, self.a_opt]))
        self.read_every = read_interval(mode)

    def _prepare(self) -> None:
        """The data, its two halves' loaders, the kernels and the supernet built with them."""
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
        kernels = select_kernels(config.kernels, self.device, self.lifecycle.status)
        self.kernels = kernels.name
        pc = config.method == "pc-darts"
        self.model: Supernet = build_supernet(self.space, data.num_classes, data.in_channels,
                                              partial_channels=config.partial_channels if pc else 1,
                                              channel_shuffle=pc and config.channel_shuffle,
                                              edge_normalization=pc, kernels=kernels).to(self.device)
        self.model.check_input_size(data.image_size, data.image_size)  # before any step, in one line
        self.cost = self._cost_table()  # counted before compilation and channels-last change how it runs
        """What the search minimises beside the validation loss (:mod:`dmc.search.cost`), or None."""

    def _cost_table(self) -> CostTable | None:
        config = self.config
        if config.cost is None:
            return None
        kind, path = parse_cost(config.cost)
        if path is not None:
            return latency_cost_table(path, self.space)
        return counted_cost_table(self.model, kind, self.data.image_size, self.data.in_channels,
                                  self.data.num_classes)

    def _val_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The architecture step's objective with a cost: cross-entropy with the expected cost folded in by the
        rule (without one, the architect's plain cross-entropy)."""
        assert self.cost is not None
        ce = F.cross_entropy(logits, y)
        config = self.config
        return cost_loss(ce, self.expected_cost(), config.cost_loss, config.cost_target, config.cost_weight,
                         config.cost_exponent)

    def expected_cost(self) -> torch.Tensor:
        """The supernet's expected cost under its current alphas (a device scalar, differentiable)."""
        assert self.cost is not None
        return self.cost.expected({g: self.model.mixing_weights(g) for g in self.space.alpha_groups})

    def _configure_execution(self) -> None:
        """Memory format, recomputation and compilation: how the supernet runs, not what it computes."""
        config, status = self.config, self.lifecycle.status
        self.model.set_channels_last(config.channels_last)
        self.model.set_recompute_edges(config.recompute_edges)
        self.compile_backend = compile_backend(self.device) if config.torch_compile else None
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

    def folder_config(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "space": self.space.name, "space_hash": self.space.content_hash,
                "dataset": self.data.describe(), "device": str(self.device), "world_size": self.process.world_size,
                "kernels": self.kernels, "compile_backend": self.compile_backend, "steps": self.steps.mode,
                "dmc_version": __version__}

    # ------------------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "w_opt": optimizer_state(self.w_opt),
                "a_opt": self.a_opt.state_dict(), "scheduler": self.scheduler.state_dict(),
                "space_hash": self.space.content_hash,
                "config": self.config.to_dict(), "dmc_version": __version__}

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        load_optimizer_state(self.w_opt, self.model, state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.scheduler.load_state_dict(state["scheduler"])

    # ------------------------------------------------------------------------------- epochs
    def begin_epoch(self, epoch: int) -> tuple[Iterable[Any], int]:
        """Beta, skip dropout and the learning rate of ``epoch``; its pairs of (weight, architecture) batches."""
        config = self.config
        self.epoch, self.beta = epoch, config.beta(epoch, config.epochs)
        self.model.set_beta(self.beta)
        if config.skip_dropout:
            self.skip_dropout = skip_dropout_rate(config.skip_dropout[0], epoch, config.epochs, config.arch_warmup)
            self.model.set_skip_dropout(self.skip_dropout)
        self.lr = float(self.scheduler.get_last_lr()[0])
        self.model.train()
        for sampler in self.samplers:
            sampler.set_epoch(epoch)
        return zip(*self.loaders), min(len(loader) for loader in self.loaders)

    def step(self, batch: Any) -> StepOutput:
        """The architecture step on the validation half (after the warm-up), then the weight step: eagerly or
        replayed as a CUDA graph (:mod:`dmc.cuda_graphs`), one per structure of the step (whether the
        architecture steps, whether the auxiliary skips run, the skip-dropout rate) and batch shape."""
        (x, y), (x_val, y_val) = batch
        self.w_opt.sync_lr()
        self.a_opt.sync_lr()
        structure = (self.epoch >= self.config.arch_warmup, self.beta != 0, self.skip_dropout)
        loss, correct = self.steps(structure, (x, y, x_val, y_val))
        return StepOutput(loss, correct, len(y))

    def _step_on_device(self, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor,
                        y_val: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's device work, on batches already on the device: nothing in it reads from the host."""
        if self.epoch >= self.config.arch_warmup:  # alpha on the validation half
            self.architect.step(x, y, x_val, y_val, self.w_opt.device_lr(), self.w_opt)
        self.w_opt.zero_grad(set_to_none=True)
        logits = self.trained(x)  # (B, classes)
        loss = F.cross_entropy(logits, y)
        if self.process.active:  # DDP's averaging hooks fire only in a full backward; the alphas' gradients
            loss.backward()      # it also computes are dropped by the next architecture step
        else:
            loss.backward(inputs=self.model.weight_parameters())
        torch.nn.utils.clip_grad_norm_(self.model.weight_parameters(), self.config.grad_clip)
        self.w_opt.step()
        return loss.detach(), (logits.argmax(1) == y).sum()

    def end_epoch(self, epoch: int, train_loss: float, train_acc: float) -> dict[str, Any]:
        """Evaluation on the architecture half, the genotype, the alphas and what else the history tracks."""
        self.process.broadcast_buffers(self.model)  # rank 0's batch-norm statistics: one network everywhere
        val_loss, val_acc = self.lifecycle.evaluate(self.model, self.val_loader, "the validation loss")
        genotype = self.model.genotype()
        record: dict[str, Any] = {
            "epoch": epoch, "beta": self.beta, "lr": self.lr, "train_loss": train_loss, "train_acc": train_acc,
            "val_loss": val_loss, "val_acc": val_acc,
            "alphas": {c: [w.tolist() for w in ws] for c, ws in self.model.edge_weights().items()},
            "genotype": genotype.to_dict(),
        }
        edge_norms = self.model.edge_norms()
        if edge_norms is not None:  # PC-DARTS: each edge's weight among its node's incoming edges
            assert isinstance(self.space, CellSpace), "_start refuses pc-darts on a chain space"
            record["edge_norm"] = {g: node_edge_weights(v.detach(), self.space).tolist()
                                   for g, v in edge_norms.items()}
        if self.cost is not None:  # the supernet's expected cost, and what the epoch's genotype costs by the table
            with torch.no_grad():
                record["expected_cost"] = float(self.expected_cost())
            record["derived_cost"] = self.cost.of_choice(family_of(self.space).chosen_candidates(genotype, self.space))
            record["cost_unit"] = self.cost.unit
        if self.hessian_due(epoch):
            record["hessian_eigenvalue"] = self.hessian_eigenvalue()
        if self.bench is not None:
            record["nb201"] = self.process.on_main(nb201_record, self.bench, genotype)
        self.scheduler.step()
        return record

    def record_best(self, record: dict[str, Any]) -> None:
        pass  # best.pt is the search's result: the lifecycle's best epoch says all

    def log_tensorboard(self, writer, record: dict[str, Any]) -> None:
        """NAS-Bench-201's accuracies of the epoch's cell and every edge's (or layer's) alphas."""
        epoch = record["epoch"]
        for dataset, accuracies in record.get("nb201", {}).items():
            if dataset != "index":
                writer.add_scalars(f"nb201/{dataset}", accuracies, epoch)
        for group, rows in record["alphas"].items():
            row = "layer" if group == "layers" else "edge"
            for e, weights in enumerate(rows):
                writer.add_scalars(f"alpha_{group}/{row}_{e:02d}", {str(k): w for k, w in enumerate(weights)}, epoch)

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


def _start(config: SearchConfig, folder: RunFolder, resume: bool, world_size: int) -> tuple[SearchConfig, AnySpace]:
    if resume:
        saved = folder.read_config()
        return SearchConfig.from_dict(saved["config"], str(folder.config_path)), folder.read_space()
    config.validate()
    space = load_space(config.space).with_macro(channels=config.channels, layers=config.layers, width=config.width)
    family_of(space).check_search(space, config.method, SearchBlockOptions())
    if config.method == "p-darts":
        for layers in config.stage_layers:  # every stage's depth fits the macro, before anything is written
            space.with_macro(layers=layers)
    if config.bench is not None:
        if space.kind != "nb201":
            raise SettingError(f"{{bench}} looks cells up in NAS-Bench-201; {space.name} is not its space",
                               "search the nb201 space, or drop {bench}")
        NB201Bench(config.bench)  # the archive's meta file reads, before anything is written
    check_dataset(config.dataset, config.data_root)
    if config.cost is not None and parse_cost(config.cost)[1] is not None:  # the table fits, before any write
        latency_cost_table(parse_cost(config.cost)[1] or "", space)
    device = resolve_device(config.device)
    check_cuda_graphs(config.cuda_graphs, device, world_size)
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
    with determinism_kept(), distributed() as process:
        config, space = process.on_main(lambda: _start(config, folder, resume, process.world_size))
        if config.method == "p-darts":  # stages of ordinary searches, in stage folders
            assert isinstance(space, CellSpace), "_start refuses p-darts on a chain space"
            genotype, stages = progressive_search(config, folder, space, process, search,
                                                  on_event if process.is_main else None)
            return SearchResult(folder.path, stages[-1].best_epoch, stages[-1].best_val_acc, genotype)
        process = process.with_device(config.device)
        with out_of_memory_as(*_memory_advice(config, space, process.device)):
            return _search(config, folder, space, resume, on_event if process.is_main else None, process)


def _search(config: SearchConfig, folder: RunFolder, space: AnySpace, resume: bool,
            on_event: EventHandler | None, process: Distributed) -> SearchResult:
    lifecycle = RunLifecycle(folder, process, config.epochs, config.seed, config.deterministic, on_event)
    task = lifecycle.build(lambda: _SearchTask(config, space, lifecycle))
    lifecycle.run(task, process.on_main(_resume_state, folder, space) if resume else None)

    def derive_and_write() -> AnyGenotype:
        genotype = derive_run(folder.path, "best")
        folder.write_result("genotype.json", genotype.save)
        return genotype

    return SearchResult(folder.path, lifecycle.best_epoch, lifecycle.best_val_acc, process.on_main(derive_and_write))


def _resume_state(folder: RunFolder, space: AnySpace) -> dict[str, Any] | None:
    """The checkpoint a resumed search continues from (None before its first epoch ended), refused when it was
    searched in another space than the run folder's ``space.yaml``."""
    state = folder.resume_state()
    if state is not None and state.get("space_hash") != space.content_hash:
        raise InvalidInputError(f"{folder.path}: the checkpoint was searched in another space",
                                "resume with the run folder's own space.yaml")
    return state


def _memory_advice(config: SearchConfig, space: AnySpace, device: torch.device) -> tuple[str, str]:
    """(what ran out, how to shrink it) for a search that runs out of memory."""
    network = [s for s in family_of(space).settings if s in SIZE_SETTINGS]
    size = image_side(config.dataset, config.image_size)
    return (f"out of memory searching {space.name} ({space.summary}) at batch {config.batch_size} of "
            f"{size}x{size} images on {device}",
            f"start a new search with {smaller(['batch_size', 'image_size', *network])}, or {{recompute_edges}}")


def nb201_record(bench: NB201Bench, genotype: Genotype) -> dict[str, Any]:
    """What history.jsonl records of an epoch's cell in NAS-Bench-201: its index, and per dataset the mean valid
    and test accuracy (%) after 200 epochs."""
    result = bench.lookup(genotype)
    return {"index": result.index, **{d.dataset: {"valid": d.valid.mean, "test": d.test.mean}
                                      for d in result.datasets}}


def search_seeds(config: SearchConfig, run_dir: str | Path, seeds: list[int], resume: bool = False,
                 on_event: EventHandler | None = None) -> list[SearchResult]:
    """Independent searches, one per seed, in ``run_dir/seed-<s>``."""
    results = []
    for seed in seeds:
        seeded = SearchConfig.from_dict({**config.to_dict(), "seed": seed})
        results.append(search(seeded, Path(run_dir) / f"seed-{seed}", resume, on_event))
    return results
