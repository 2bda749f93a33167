"""Training a compiled network from scratch (the paper's evaluation protocol), with exact resume.

A run folder holds ``config.json``, ``history.jsonl`` (per epoch: lr, drop-path, train and test loss and
accuracy, wall time), ``last.pt`` and ``best.pt`` (training checkpoints that also carry the genotype and
build arguments, so `dmc export`, `dmc profile` and the detection backbone rebuild the network from them
alone), ``result.json`` with the final top-1 test accuracy, and TensorBoard events in ``tb/``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from dmc.checkpoints import load_checkpoint, save_checkpoint
from dmc.compiler import BuildArgs, compile
from dmc.compiler.saved import TRAIN_CHECKPOINT_FORMAT, network_record
from dmc.data import load_dataset
from dmc.data.cutout import CutoutDataset
from dmc.errors import InvalidInputError
from dmc.genotype import Genotype
from dmc.io import atomic_write_text
from dmc.runfolder import append_history, claim_new_run_dir, keep_history
from dmc.runtime import (EpochPermutation, evaluate, resolve_device, restore_rng_state, rng_state,
                         seed_everything)
from dmc.train.config import TrainConfig
from dmc.version import __version__


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    test_acc: float
    """Top-1 test accuracy after the last epoch (the paper's protocol)."""
    best_test_acc: float
    best_epoch: int
    parameters: int
    """Parameters without the auxiliary head, as DARTS counts them."""


def load_train_checkpoint(path: str | Path) -> dict[str, Any]:
    return load_checkpoint(path, (TRAIN_CHECKPOINT_FORMAT,), "dmc training checkpoint",
                           "use best.pt or last.pt of a `dmc train` run folder")


def train(genotype: Genotype | None, config: TrainConfig, run_dir: str | Path, resume: bool = False,
          on_event=None) -> TrainResult:
    """Trains ``genotype``'s network with ``config`` into ``run_dir``, or continues it with ``resume``
    (then ``genotype`` and ``config`` come from the run folder). ``on_event`` is called as in search."""
    run_dir = Path(run_dir)
    on_event = on_event or (lambda kind, **info: None)
    if resume:
        state = load_train_checkpoint(run_dir / "last.pt")
        config = TrainConfig.from_dict(state["config"])
        genotype = Genotype.from_dict(state["genotype"], f"{run_dir}/last.pt: genotype")
    else:
        config.validate()
        claim_new_run_dir(run_dir, "config.json", "training run")
        state = None
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    try:
        return _train(genotype, config, run_dir, state, on_event)
    finally:
        torch.use_deterministic_algorithms(deterministic_before)


def _train(genotype: Genotype, config: TrainConfig, run_dir: Path, state, on_event) -> TrainResult:
    from torch.utils.tensorboard import SummaryWriter

    device = resolve_device(config.device)
    seed_everything(config.seed, config.deterministic)
    data = load_dataset(config.dataset, config.data_root, augment=config.augment)
    train_set = CutoutDataset(data.train, config.cutout) if config.cutout > 0 else data.train
    sampler = EpochPermutation(len(train_set), config.seed)
    train_loader = DataLoader(train_set, config.batch_size, sampler=sampler, num_workers=config.num_workers,
                              pin_memory=device.type == "cuda")
    test_loader = DataLoader(data.test, config.batch_size * 2, num_workers=config.num_workers)

    args = BuildArgs(style=config.style, num_classes=data.num_classes, channels=config.channels,
                     layers=config.layers, auxiliary=config.auxiliary and config.style != "nb201",
                     in_channels=data.in_channels)
    model = compile(genotype, args).to(device)
    model.check_input_size(data.image_size, data.image_size)
    optimizer = torch.optim.SGD(model.parameters(), config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs, eta_min=config.lr_min)
    epoch, best_acc, best_epoch, test_acc = 0, -1.0, -1, -1.0
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise InvalidInputError(f"{run_dir}/last.pt does not fit its own network ({type(exc).__name__})",
                                    "rerun the training in a new folder") from None
        restore_rng_state(state["rng"])
        epoch, best_acc, best_epoch = state["epoch"], state["best_test_acc"], state["best_epoch"]
        test_acc = state["test_acc"]
    keep_history(run_dir, epoch)
    data_info = data.describe()
    atomic_write_text(run_dir / "config.json", json.dumps(
        {"config": config.to_dict(), "genotype": genotype.to_dict(), "build_args": args.to_dict(),
         "dataset": data_info, "device": str(device), "dmc_version": __version__}, indent=2) + "\n")

    writer = SummaryWriter(str(run_dir / "tb"), purge_step=epoch)
    try:
        while epoch < config.epochs:
            started = time.perf_counter()
            model.drop_path_prob = config.drop_path * epoch / config.epochs
            lr = scheduler.get_last_lr()[0]
            model.train()
            sampler.set_epoch(epoch)
            on_event("epoch_start", epoch=epoch, epochs=config.epochs, steps=len(train_loader))
            total, correct, seen = 0.0, 0, 0
            for step, (x, y) in enumerate(train_loader):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                out = model(x)
                logits, aux_logits = out if isinstance(out, tuple) else (out, None)
                loss = F.cross_entropy(logits, y)
                if aux_logits is not None:
                    loss = loss + config.auxiliary_weight * F.cross_entropy(aux_logits, y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                total += loss.item() * len(y)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
                on_event("step", epoch=epoch, step=step + 1, steps=len(train_loader), loss=loss.item())
            test_loss, test_acc = evaluate(model, test_loader, device)
            record = {"epoch": epoch, "lr": lr, "drop_path": model.drop_path_prob, "train_loss": total / seen,
                      "train_acc": correct / seen, "test_loss": test_loss, "test_acc": test_acc,
                      "seconds": time.perf_counter() - started}
            scheduler.step()
            epoch += 1
            improved = test_acc > best_acc
            if improved:
                best_acc, best_epoch = test_acc, epoch - 1
            append_history(run_dir, record)
            checkpoint = {**network_record(model), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "rng": rng_state(), "epoch": epoch,
                          "test_acc": test_acc, "best_test_acc": best_acc, "best_epoch": best_epoch,
                          "config": config.to_dict(),
                          "data": data_info}
            save_checkpoint(run_dir / "last.pt", TRAIN_CHECKPOINT_FORMAT, checkpoint)
            if improved:
                save_checkpoint(run_dir / "best.pt", TRAIN_CHECKPOINT_FORMAT, checkpoint)
            for key in ("lr", "drop_path", "train_loss", "train_acc", "test_loss", "test_acc"):
                writer.add_scalar(key, record[key], record["epoch"])
            writer.flush()
            on_event("epoch_end", record=record)
    finally:
        writer.close()
    result = TrainResult(run_dir, test_acc, best_acc, best_epoch, model.num_parameters())
    atomic_write_text(run_dir / "result.json", json.dumps(
        {"test_acc": result.test_acc, "best_test_acc": best_acc, "best_epoch": best_epoch,
         "parameters": result.parameters, "epochs": config.epochs}, indent=2) + "\n")
    return result
