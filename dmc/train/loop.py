"""Training a compiled network from scratch (DARTS's CIFAR protocol or the MnasNet ImageNet recipe), with exact
resume.

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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from dmc.chain_genotype import ChainGenotype
from dmc.compiler import (
    BuildArgs,
    CompiledNetwork,
    build_args_for,
    build_network,
    load_network,
    save_network,
)
from dmc.compiler.saved import network_record
from dmc.data import DataBundle, check_dataset, load_dataset
from dmc.data.cutout import CutoutDataset
from dmc.distributed import MIN_BATCH, Distributed, ShardedBatches, convert_sync_batchnorm, distributed
from dmc.errors import InvalidInputError
from dmc.genotype import Genotype
from dmc.io import atomic_write_text
from dmc.out_of_memory import out_of_memory_as, smaller
from dmc.runfolder import (
    TRAIN_RUN,
    DamagedRunFile,
    RunFolder,
    check_world_size,
    finished_message,
    restoring,
    written,
)
from dmc.runtime import (
    check_finite,
    dataset_size,
    evaluate,
    resolve_device,
    seed_everything,
)
from dmc.train.config import IMAGENET_MIN_SIDE, TrainConfig
from dmc.train.optim import (
    WeightEMA,
    add_classifier_dropout,
    build_optimizer,
    build_scheduler,
)
from dmc.version import __version__


class _Best(TypedDict):
    """The best epoch so far and its accuracies, as the checkpoints record them."""

    best_epoch: int
    best_val_acc: float
    best_test_acc: float


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


def train(source: Genotype | ChainGenotype | CompiledNetwork | str | Path | None, config: TrainConfig,
          run_dir: str | Path, resume: bool = False, on_event=None) -> TrainResult:
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
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    with distributed() as process:
        genotype, config, state, init = process.on_main(lambda: _start(source, config, folder, resume))
        process = process.with_device(config.device)
        try:
            with out_of_memory_as(*_memory_advice(genotype, config, init, process.device)):
                return _train(genotype, config, folder, state, (on_event if process.is_main else None) or _ignore,
                              init, process)
        finally:
            torch.use_deterministic_algorithms(deterministic_before)


def _ignore(kind: str, **info) -> None:
    pass


def _memory_advice(genotype: Genotype | ChainGenotype, config: TrainConfig, init: CompiledNetwork | None,
                   device: torch.device) -> tuple[str, str]:
    """(what ran out, how to shrink it) for a training run that runs out of memory."""
    knobs = ["--batch-size", "--image-size"]
    if init is None:  # a given network file fixes its own size
        knobs += ["--width"] if isinstance(genotype, ChainGenotype) else ["--channels", "--layers"]
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


def _start(source, config: TrainConfig, folder: RunFolder, resume: bool):
    """(genotype, settings, checkpoint state or None, starting network or None) of the run, its folder claimed."""
    if resume:
        return _resume(folder)
    config.validate()
    if isinstance(source, (str, Path)):
        source = load_network(source)
    genotype, init = (source.genotype, source) if isinstance(source, CompiledNetwork) else (source, None)
    check_dataset(config.dataset, config.data_root, config.augment_policy)
    resolve_device(config.device)
    folder.claim()
    if init is not None:
        save_network(init, folder.init)
    return genotype, config, None, init


def _resume(folder: RunFolder) -> tuple[Genotype | ChainGenotype, TrainConfig, dict[str, Any] | None,
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
    return Genotype.from_dict(saved["genotype"], f"{source}: genotype"), config, state, init


def _build_args(genotype: Genotype | ChainGenotype, config: TrainConfig, data: DataBundle) -> BuildArgs:
    """How ``genotype`` is built for ``data``: a chain network at the config's ``width`` (its skeleton otherwise
    as searched); a cell network with the config's style, channels, cells and auxiliary head."""
    if isinstance(genotype, ChainGenotype):
        return build_args_for(genotype, num_classes=data.num_classes, width=config.width,
                              in_channels=data.in_channels)
    return build_args_for(genotype, style=config.style, num_classes=data.num_classes, channels=config.channels,
                          layers=config.layers, auxiliary=config.auxiliary and genotype.kind != "nb201",
                          in_channels=data.in_channels)


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
        raise InvalidInputError(f"the auxiliary head gets {side} feature maps from {data.image_size}-pixel images, "
                                "too small for its pooling", "train with --no-auxiliary or a larger --image-size") \
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


def _prepare(genotype: Genotype | ChainGenotype, config: TrainConfig, init: CompiledNetwork | None,
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
            raise InvalidInputError(
                f"the network has {args.num_classes} classes and {args.in_channels} input channels, "
                f"{config.dataset} has {data.num_classes} and {data.in_channels}",
                f"compile it with --classes {data.num_classes} (and the dataset's input channels), or train the "
                "genotype")
    model.check_input_size(data.image_size, data.image_size)
    _check_auxiliary_head(model, data, device)
    return data, train_images, val_images, args, model


def _train(genotype: Genotype | ChainGenotype, config: TrainConfig, folder: RunFolder, state, on_event,
           init: CompiledNetwork | None, process: Distributed) -> TrainResult:
    from torch.utils.tensorboard import SummaryWriter

    run_dir = folder.path
    device = process.device
    seed_everything(config.seed, config.deterministic)
    data, train_images, val_images, args, model = process.everywhere(  # local work: its errors reported once
        lambda: _prepare(genotype, config, init, device))
    on_event("status", message=_describe_run(args, model, config, data, process))
    train_set = CutoutDataset(train_images, config.cutout) if config.cutout > 0 else train_images
    sampler = ShardedBatches(len(train_set), config.batch_size, config.seed, process.rank, process.world_size,
                             min_share=MIN_BATCH)
    train_loader = DataLoader(train_set, batch_sampler=sampler, num_workers=config.num_workers,
                              pin_memory=device.type == "cuda")
    test_loader = DataLoader(process.shard(data.test), config.batch_size * 2, num_workers=config.num_workers)
    val_loader = None if val_images is None else DataLoader(process.shard(val_images), config.batch_size * 2,
                                                            num_workers=config.num_workers)

    if config.sync_bn and process.active:
        convert_sync_batchnorm(model)
    ema = WeightEMA(model, config.ema_decay) if config.ema_decay > 0 else None
    evaluated = model if ema is None else ema.network  # what validation, test and the checkpoints' network are
    if config.dropout > 0:
        add_classifier_dropout(model, config.dropout)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, len(train_loader))
    trained = process.data_parallel(model)
    if process.active:  # independent augmentation, cutout and drop-path draws per process; same model everywhere
        seed_everything(config.seed + 7919 * process.rank, config.deterministic)
    epoch, test_acc = 0, -1.0
    best = _Best(best_epoch=-1, best_val_acc=-1.0, best_test_acc=-1.0)
    if state is not None:
        check_world_size(state, process, run_dir)
        with restoring(run_dir, "its own network"):
            model.load_state_dict(state["model"] if ema is None else state["train_model"])
            if ema is not None:
                ema.network.load_state_dict(state["model"])
                ema.load_state_dict(state["ema"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            process.restore_rng_states(state)
            best = _Best(best_epoch=state["best_epoch"], best_val_acc=state["best_val_acc"],
                         best_test_acc=state["best_test_acc"])
            test_acc = float(state["test_acc"])
        epoch = state["epoch"]
        if epoch >= config.epochs:
            on_event("status", message=finished_message(run_dir, config.epochs))
    data_info = {**data.describe(), "validation": 0 if val_images is None else len(val_images)}

    def start_folder() -> None:
        folder.keep_history(epoch)
        folder.write_config({"config": config.to_dict(), "genotype": genotype.to_dict(), "build_args": args.to_dict(),
                             "dataset": data_info, "device": str(device), "world_size": process.world_size,
                             "dmc_version": __version__})

    process.on_main(start_folder)

    writer = SummaryWriter(str(run_dir / "tb"), purge_step=epoch) if process.is_main else None
    try:
        while epoch < config.epochs:
            started = time.perf_counter()
            model.drop_path_prob = config.drop_path * epoch / config.epochs
            lr = optimizer.param_groups[0]["lr"]
            model.train()
            sampler.set_epoch(epoch)
            on_event("epoch_start", epoch=epoch, epochs=config.epochs, steps=len(train_loader))
            total, correct, seen = 0.0, 0, 0
            for step, (x, y) in enumerate(train_loader):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                loss, logits = training_loss(trained(x), y, config)
                value = check_finite(loss.item(), "the training loss", epoch, step + 1, run_dir)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if ema is not None:
                    ema.update(model)
                if config.per_step_schedule:
                    scheduler.step()
                total += value * len(y)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
                on_event("step", epoch=epoch, step=step + 1, steps=len(train_loader), loss=value)
                written(f"step@{epoch}.{step + 1}")
            summed_loss, summed_correct, summed_seen = process.sum([total, correct, seen])
            record = {"epoch": epoch, "lr": lr, "drop_path": model.drop_path_prob,
                      "train_loss": summed_loss / summed_seen, "train_acc": summed_correct / summed_seen}
            process.broadcast_buffers(model)  # rank 0's batch-norm statistics: one network everywhere
            if ema is not None:
                process.broadcast_buffers(evaluated)
            if val_loader is not None:
                record["val_loss"], record["val_acc"] = evaluate(evaluated, val_loader, device, process.sum)
                check_finite(record["val_loss"], "the validation loss", epoch, None, run_dir)
            record["test_loss"], record["test_acc"] = evaluate(evaluated, test_loader, device, process.sum)
            check_finite(record["test_loss"], "the test loss", epoch, None, run_dir)
            record["seconds"] = time.perf_counter() - started
            test_acc = record["test_acc"]
            if not config.per_step_schedule:
                scheduler.step()
            epoch += 1
            improved = val_loader is None or record["val_acc"] > best["best_val_acc"]
            if improved:
                best = _Best(best_epoch=epoch - 1, best_val_acc=record.get("val_acc", -1.0), best_test_acc=test_acc)
            checkpoint = {**network_record(evaluated), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), **process.rng_states(), "world_size": process.world_size,
                          "epoch": epoch, "test_acc": test_acc, **best, "config": config.to_dict(), "data": data_info}
            if ema is not None:
                checkpoint.update(train_model=model.state_dict(), ema=ema.state_dict())
            process.on_main(folder.end_epoch, epoch - 1, record, checkpoint, improved)
            if writer is not None:
                for key in ("lr", "drop_path", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
                            "test_acc"):
                    if key in record:
                        writer.add_scalar(key, record[key], record["epoch"])
                writer.flush()
            on_event("epoch_end", record=record)
    finally:
        if writer is not None:
            writer.close()
    best_val_acc = best["best_val_acc"] if val_loader is not None else None
    result = TrainResult(run_dir, test_acc, best["best_test_acc"], best["best_epoch"], model.num_parameters(),
                         best_val_acc)
    summary = {"test_acc": result.test_acc, "best_epoch": result.best_epoch, "best_val_acc": best_val_acc,
               "best_test_acc": result.best_test_acc, "val_portion": config.val_portion,
               "parameters": result.parameters, "epochs": config.epochs}
    process.on_main(lambda: folder.write_result("result.json", lambda path: atomic_write_text(
        path, json.dumps(summary, indent=2, allow_nan=False) + "\n")))
    return result
