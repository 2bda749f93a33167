"""Training a compiled network from scratch (DARTS's CIFAR protocol or the MnasNet ImageNet recipe), with exact
resume: its step, epochs and result, in the run lifecycle (:mod:`dmc.run_lifecycle`) that the search shares.

The run folder (:mod:`dmc.runfolder`) records per epoch lr, drop-path, train, validation and test loss and
accuracy and wall time; ``last.pt`` and ``best.pt`` are training checkpoints that also carry the genotype and
build arguments, so `dmc export`, `dmc profile` and the detection backbone rebuild the network from them
alone; ``result.json`` holds the accuracies.

``best.pt`` is the epoch with the best accuracy on a held-out validation split of the training data
(``val_portion``); the test split is only ever reported: the final epoch's test accuracy (the paper's
protocol) and that of ``best.pt``. Writes are crash-consistent (:mod:`dmc.runfolder`).

With a weight EMA (``ema_decay``), validation and test use the averaged weights, and they are the network of
``best.pt`` and ``last.pt`` (``model``); the checkpoints also hold the training weights (``train_model``) and the
EMA's update count, so that resume continues both exactly. Optimiser and scheduler states (RMSProp's mean squares,
the per-step schedule's step) are in every checkpoint too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from dmc.compiler import (
    BuildArgs,
    CompiledNetwork,
    build_args_for,
    build_network,
    load_network,
    save_network,
)
from dmc.compiler.build_args import builds_style
from dmc.compiler.saved import network_record
from dmc.cuda_graphs import StepGraphs, check_cuda_graphs, read_interval, step_mode, step_state
from dmc.data import DataBundle, check_dataset, load_dataset
from dmc.data.cutout import CutoutDataset
from dmc.distributed import MIN_BATCH, Distributed, ShardedBatches, convert_sync_batchnorm, distributed
from dmc.errors import InvalidInputError, SettingError
from dmc.families import AnyGenotype, family_of
from dmc.families.settings import SIZE_SETTINGS
from dmc.genotype import genotype_from_dict
from dmc.io import atomic_write_text
from dmc.optimizer_order import load_optimizer_state, optimizer_state
from dmc.out_of_memory import out_of_memory_as, smaller
from dmc.run_lifecycle import EventHandler, RunLifecycle, StepOutput, determinism_kept
from dmc.runfolder import TRAIN_RUN, DamagedRunFile, RunFolder
from dmc.runtime import dataset_size, resolve_device
from dmc.train.config import IMAGENET_MIN_SIDE, TrainConfig
from dmc.train.optim import (
    WeightEMA,
    add_classifier_dropout,
    build_optimizer,
    build_scheduler,
)
from dmc.version import __version__


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    test_acc: float
    """Top-1 test accuracy after the last epoch (the paper's protocol)."""
    best_test_acc: float
    """Top-1 test accuracy of ``best.pt``."""
    best_epoch: int
    """The epoch of ``best.pt``: best validation accuracy (the last epoch when ``val_portion`` is 0)."""
    parameters: int
    """Parameters without the auxiliary head, as DARTS counts them."""
    best_val_acc: float | None = None
    """Validation accuracy of ``best.pt``; None without a validation split."""


def load_train_checkpoint(path: str | Path) -> dict[str, Any]:
    return TRAIN_RUN.load(path)


def train(source: AnyGenotype | CompiledNetwork | str | Path | None, config: TrainConfig,
          run_dir: str | Path, resume: bool = False, on_event: EventHandler | None = None) -> TrainResult:
    """Trains ``source`` with ``config`` into ``run_dir``, or continues it with ``resume`` (then everything comes
    from the run folder). ``on_event`` is called as in search.

    ``source`` is a genotype (built with the config's style, channels, layers and auxiliary head, as searched
    otherwise), or a compiled network or network file (`dmc compile`, `dmc train`): then that network, weights
    included, is what trains, and the config's build settings are not used; its classes and input channels
    must be the dataset's. Its starting weights are kept in the run folder as ``init.pt``.

    An epoch's last batch is dropped when it would hold a single image (:data:`dmc.distributed.batches.MIN_BATCH`: batch
    norm cannot train on one image where a feature map is 1x1, as in the auxiliary head).

    Launched on several processes (torchrun, a Slurm step, ``dmc train --nproc``), every process calls this: they
    train together with DDP (:mod:`dmc.distributed`), rank 0 writes the run folder and gets the events.
    """
    folder = RunFolder(run_dir, TRAIN_RUN)
    with determinism_kept(), distributed() as process:
        genotype, config, state, init = process.on_main(
            lambda: _start(source, config, folder, resume, process.world_size))
        process = process.with_device(config.device)
        with out_of_memory_as(*_memory_advice(genotype, config, init, process.device)):
            return _train(genotype, config, folder, state, on_event if process.is_main else None, init, process)


def _memory_advice(genotype: AnyGenotype, config: TrainConfig, init: CompiledNetwork | None,
                   device: torch.device) -> tuple[str, str]:
    """(what ran out, how to shrink it) for a training run that runs out of memory."""
    knobs = ["batch_size", "image_size"]
    if init is None:  # a given network file fixes its own size
        knobs += [s for s in family_of(genotype).settings if s in SIZE_SETTINGS]
    return (f"out of memory training at batch {config.batch_size} of {config.image_size}x{config.image_size} images "
            f"on {device}", f"start a new run with {smaller(knobs)}")


def _describe_run(args: BuildArgs, model: CompiledNetwork, config: TrainConfig, data: DataBundle,
                 process: Distributed) -> str:
    """The start-up line: the network and its size, the images, the batch and the recipe the settings come from."""
    batch = process.describe_batch(config.batch_size)
    recipe = f"{config.recipe} recipe"
    if config.recipe == "imagenet" and config.dataset.partition(":")[0] == "folder":
        recipe += f" (the default for folder images of at least {IMAGENET_MIN_SIDE} px; --recipe darts for DARTS's)"
    return (f"training the {args.describe()} ({model.num_parameters():,} parameters) on {data.name}: "
            f"{data.image_size}x{data.image_size} images, {batch}, {config.epochs} epochs; {recipe}; on "
            f"{process.device}")


def _start(source, config: TrainConfig, folder: RunFolder, resume: bool, world_size: int):
    """(genotype, settings, checkpoint state or None, starting network or None) of the run, its folder claimed."""
    if resume:
        return _resume(folder)
    config.validate()
    if isinstance(source, (str, Path)):
        source = load_network(source)
    genotype, init = (source.genotype, source) if isinstance(source, CompiledNetwork) else (source, None)
    check_dataset(config.dataset, config.data_root, config.augment_policy)
    check_cuda_graphs(config.cuda_graphs, resolve_device(config.device), world_size)
    folder.claim()
    if init is not None:
        save_network(init, folder.init)
    return genotype, config, None, init


def _resume(folder: RunFolder) -> tuple[AnyGenotype, TrainConfig, dict[str, Any] | None,
                                       CompiledNetwork | None]:
    """Genotype, settings, checkpoint state and starting network (None: built from the genotype) of an
    interrupted run: from its newest checkpoint, or from ``config.json`` (and ``init.pt``) alone when it was
    stopped before its first epoch ended (it then starts over)."""
    state = folder.resume_state()
    if state is not None:
        saved, source = state, str(folder.last)
    else:
        saved, source = folder.read_config(), str(folder.config_path)
    config = TrainConfig.from_dict(saved.get("config"), source)
    if not isinstance(saved.get("genotype"), dict):
        raise DamagedRunFile(f"{source}: damaged (no genotype)")
    init = load_network(folder.init) if folder.init.is_file() else None
    return genotype_from_dict(saved["genotype"], f"{source}: genotype"), config, state, init


def _build_args(genotype: AnyGenotype, config: TrainConfig, data: DataBundle) -> BuildArgs:
    """How ``genotype`` is built for ``data``: with the config's settings of the genotype's family (a chain
    network's ``width``; a cell network's style, channels, cells and auxiliary head), as searched otherwise."""
    family = family_of(genotype)
    sizes = {k: getattr(config, k) for k in SIZE_SETTINGS if k in family.settings}
    style = config.style if config.style is not None and builds_style(family, config.style) \
        else None  # a recipe's cell style says nothing about a chain network
    return build_args_for(genotype, style=style, num_classes=data.num_classes, in_channels=data.in_channels,
                          auxiliary=config.auxiliary and family.has_auxiliary_head, **sizes)


def _load(config: TrainConfig, augment: bool) -> DataBundle:
    return load_dataset(config.dataset, config.data_root, augment=augment, image_size=config.image_size,
                        policy=config.augment_policy, center_crop=config.center_crop)


def training_loss(out, y: torch.Tensor, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits) of a training forward pass ``out``: cross-entropy with ``label_smoothing``, plus the auxiliary
    head's (same smoothing) weighted ``auxiliary_weight``."""
    logits, aux_logits = out if isinstance(out, tuple) else (out, None)
    loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
    if aux_logits is not None:
        loss = loss + config.auxiliary_weight * F.cross_entropy(aux_logits, y, label_smoothing=config.label_smoothing)
    return loss, logits


def _check_auxiliary_head(model: CompiledNetwork, data: DataBundle, device: torch.device) -> None:
    """Refuses an image size at which the auxiliary head's pooling leaves nothing (DARTS's ImageNet head wants its
    7x7 map of 224-pixel images, the CIFAR head the 8x8 of 32): one eval-mode forward of a blank image, with the
    random generators left as they were."""
    head, position = getattr(model, "auxiliary_head", None), getattr(model, "aux_position", None)
    if head is None or position is None:
        return
    shapes = []
    hook = model.blocks[position].register_forward_hook(lambda m, args, out: shapes.append(out.shape))
    was_training = model.training
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            model.eval()
            model(torch.zeros(1, data.in_channels, data.image_size, data.image_size, device=device))
            head.eval()
            head(torch.zeros(shapes[0], device=device))
    except RuntimeError:
        side = f"{shapes[0][-2]}x{shapes[0][-1]}" if shapes else "too small a"
        raise SettingError(f"the auxiliary head gets {side} feature maps from {data.image_size}-pixel images, "
                           "too small for its pooling", "train with {auxiliary=False} or a larger {image_size}") \
            from None
    finally:
        hook.remove()
        model.train(was_training)


def _splits(config: TrainConfig, data: DataBundle) -> tuple[Dataset, Dataset | None]:
    """The training images and the held-out validation images (unaugmented; None when ``val_portion`` is 0),
    a fixed split of the training split that depends only on the seed."""
    if config.val_portion == 0:
        return data.train, None
    n = dataset_size(data.train)
    held_out = int(n * config.val_portion)
    if not 1 <= held_out < n:
        raise InvalidInputError(f"val_portion {config.val_portion} of {n} training images leaves an empty split",
                                "choose a val_portion that holds out at least one image, or 0")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed)).tolist()
    plain = _load(config, augment=False).train if config.augment else data.train
    return Subset(data.train, order[held_out:]), Subset(plain, order[:held_out])


def _prepare(genotype: AnyGenotype, config: TrainConfig, init: CompiledNetwork | None,
             device: torch.device):
    """The data, its training and held-out images, and the network (built, or the given one) checked against them."""
    data = _load(config, augment=config.augment)
    train_images, val_images = _splits(config, data)
    if init is None:
        args = _build_args(genotype, config, data)
        model = build_network(genotype, args).to(device)
    else:
        args, model = init.build_args, init.to(device)
        if (args.num_classes, args.in_channels) != (data.num_classes, data.in_channels):
            raise SettingError(
                f"the network has {args.num_classes} classes and {args.in_channels} input channels, "
                f"{config.dataset} has {data.num_classes} and {data.in_channels}",
                f"compile it with {{num_classes}} {data.num_classes} (and the dataset's input channels), or train "
                "the genotype")
    model.check_input_size(data.image_size, data.image_size)
    _check_auxiliary_head(model, data, device)
    return data, train_images, val_images, args, model


class _TrainingTask:
    """What training does of its own: its step (auxiliary loss, EMA, per-step schedules) and per epoch drop-path,
    the evaluations on the held-out and test images and the test accuracies of the last and the best epoch;
    :class:`dmc.run_lifecycle.RunLifecycle` drives it."""

    restored_what = "its own network"

    def __init__(self, genotype: AnyGenotype, config: TrainConfig, init: CompiledNetwork | None,
                 lifecycle: RunLifecycle):
        process = lifecycle.process
        self.genotype, self.config, self.process, self.lifecycle = genotype, config, process, lifecycle
        self.device = device = process.device
        data, train_images, val_images, self.args, model = process.everywhere(  # local work: its errors reported once
            lambda: _prepare(genotype, config, init, device))
        self.data, self.model = data, model
        train_set = CutoutDataset(train_images, config.cutout) if config.cutout > 0 else train_images
        self.sampler = ShardedBatches(len(train_set), config.batch_size, config.seed, process.rank,
                                      process.world_size, min_share=MIN_BATCH)
        self.train_loader = DataLoader(train_set, batch_sampler=self.sampler, num_workers=config.num_workers,
                                       pin_memory=device.type == "cuda")
        self.test_loader = DataLoader(process.shard(data.test), config.batch_size * 2, num_workers=config.num_workers)
        self.val_loader = None if val_images is None else DataLoader(process.shard(val_images), config.batch_size * 2,
                                                                     num_workers=config.num_workers)
        self.data_info = {**data.describe(), "validation": 0 if val_images is None else len(val_images)}
        if config.sync_bn and process.active:
            convert_sync_batchnorm(model)
        self.ema = WeightEMA(model, config.ema_decay) if config.ema_decay > 0 else None
        self.evaluated = model if self.ema is None else self.ema.network
        """What validation, test and the checkpoints' network are."""
        if config.dropout > 0:
            add_classifier_dropout(model, config.dropout)
        self.optimizer = build_optimizer(model, config)
        self.scheduler = build_scheduler(self.optimizer, config, len(self.train_loader))
        self.trained = process.data_parallel(model)
        self.lr, self.test_acc, self.best_test_acc = 0.0, -1.0, -1.0
        """The epoch's learning rate; the test accuracy of the last epoch and of the best one."""
        mode = step_mode(config.cuda_graphs, device, process.world_size, lifecycle.status)
        averaged = [] if self.ema is None else [self.ema.network]
        self.steps = StepGraphs(self._step_on_device, mode, device, status=lifecycle.status,
                                state=lambda: step_state([model, *averaged], [self.optimizer]))
        self.read_every = read_interval(mode)

    def describe(self) -> str:
        return _describe_run(self.args, self.model, self.config, self.data, self.process)

    def folder_config(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "genotype": self.genotype.to_dict(), "build_args": self.args.to_dict(),
                "dataset": self.data_info, "device": str(self.device), "world_size": self.process.world_size,
                "steps": self.steps.mode, "dmc_version": __version__}

    # ------------------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        state = {**network_record(self.evaluated), "optimizer": optimizer_state(self.optimizer),
                 "scheduler": self.scheduler.state_dict(), "test_acc": self.test_acc,
                 "best_test_acc": self.best_test_acc, "config": self.config.to_dict(), "data": self.data_info}
        if self.ema is not None:
            state.update(train_model=self.model.state_dict(), ema=self.ema.state_dict())
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"] if self.ema is None else state["train_model"])
        if self.ema is not None:
            self.ema.network.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
        load_optimizer_state(self.optimizer, self.model, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.best_test_acc, self.test_acc = state["best_test_acc"], float(state["test_acc"])

    # ------------------------------------------------------------------------------- epochs
    def begin_epoch(self, epoch: int) -> tuple[Iterable[Any], int]:
        """Drop-path's rate of ``epoch`` (rising linearly to ``drop_path``); its batches."""
        self.model.drop_path_prob = self.config.drop_path * epoch / self.config.epochs
        self.lr = self.optimizer.param_groups[0]["lr"]
        self.model.train()
        self.sampler.set_epoch(epoch)
        return self.train_loader, len(self.train_loader)

    def step(self, batch: Any) -> StepOutput:
        """One step, eagerly or replayed as a CUDA graph (:mod:`dmc.cuda_graphs`), one per drop-path rate and batch
        shape; the host keeps the schedules (the learning rate, the EMA's decay) and hands them over as tensors."""
        x, y = batch
        self.optimizer.sync_lr()
        if self.ema is not None:
            self.ema.advance()
        loss, correct = self.steps((self.model.drop_path_prob,), (x, y))
        if self.config.per_step_schedule:
            self.scheduler.step()
        return StepOutput(loss, correct, len(y))

    def _step_on_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's device work, on a batch already on the device: nothing in it reads from the host."""
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits = training_loss(self.trained(x), y, self.config)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.apply(self.model)
        return loss.detach(), (logits.argmax(1) == y).sum()

    def end_epoch(self, epoch: int, train_loss: float, train_acc: float) -> dict[str, Any]:
        """Validation (when held out) and test, with the EMA's weights when there is one."""
        record = {"epoch": epoch, "lr": self.lr, "drop_path": self.model.drop_path_prob,
                  "train_loss": train_loss, "train_acc": train_acc}
        self.process.broadcast_buffers(self.model)  # rank 0's batch-norm statistics: one network everywhere
        if self.ema is not None:
            self.process.broadcast_buffers(self.evaluated)
        if self.val_loader is not None:
            record["val_loss"], record["val_acc"] = self.lifecycle.evaluate(self.evaluated, self.val_loader,
                                                                            "the validation loss")
        record["test_loss"], record["test_acc"] = self.lifecycle.evaluate(self.evaluated, self.test_loader,
                                                                          "the test loss")
        self.test_acc = record["test_acc"]
        if not self.config.per_step_schedule:
            self.scheduler.step()
        return record

    def record_best(self, record: dict[str, Any]) -> None:
        self.best_test_acc = record["test_acc"]

    def log_tensorboard(self, writer, record: dict[str, Any]) -> None:
        pass  # the record's numbers say all


def _train(genotype: AnyGenotype, config: TrainConfig, folder: RunFolder, state: dict[str, Any] | None,
           on_event: EventHandler | None, init: CompiledNetwork | None, process: Distributed) -> TrainResult:
    lifecycle = RunLifecycle(folder, process, config.epochs, config.seed, config.deterministic, on_event)
    task = lifecycle.build(lambda: _TrainingTask(genotype, config, init, lifecycle))
    lifecycle.run(task, state)
    best_val_acc = lifecycle.best_val_acc if task.val_loader is not None else None
    result = TrainResult(folder.path, task.test_acc, task.best_test_acc, lifecycle.best_epoch,
                         task.model.num_parameters(), best_val_acc)
    summary = {"test_acc": result.test_acc, "best_epoch": result.best_epoch, "best_val_acc": best_val_acc,
               "best_test_acc": result.best_test_acc, "val_portion": config.val_portion,
               "parameters": result.parameters, "epochs": config.epochs}
    process.on_main(lambda: folder.write_result("result.json", lambda path: atomic_write_text(
        path, json.dumps(summary, indent=2, allow_nan=False) + "\n")))
    return result
