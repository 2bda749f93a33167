"""`dmc train`: train a genotype's network from scratch (DARTS's CIFAR protocol or the MnasNet ImageNet recipe)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from dmc.api import (
    CompiledNetwork,
    TrainConfig,
    builds_style,
    family_of,
    genotype_or_network,
    is_main_process,
    train,
)
from dmc.cli.app import command
from dmc.cli.processes import NProc, SyncBN, run_processes
from dmc.cli.progress import epoch_progress
from dmc.cli.run_options import (
    CudaGraphs,
    DataRoot,
    Dataset,
    Deterministic,
    Device,
    Seed,
    refuse_settings_on_resume,
)
from dmc.errors import InvalidInputError


@command(name="train")
def train_command(
    genotype: str = typer.Argument(None, help="Genotype file or published name (DARTS_V2, cifar10_s3_0, ...), or "
                                              "a network file of `dmc compile` (trained as compiled, from its "
                                              "weights)."),
    dataset: str = Dataset,
    data_root: str = DataRoot,
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (default: runs/train-<genotype>-<time>)."),
    resume: Path = typer.Option(None, help="Continue the training in this run folder exactly where it stopped."),
    recipe: str = typer.Option(None, help="darts | imagenet: the preset the other settings default to (DARTS's "
                                          "CIFAR protocol, or DARTS's ImageNet network with the MnasNet recipe) "
                                          "[imagenet for folder datasets of images >= 64 px (--image-size, else "
                                          "the first training image), darts otherwise]."),
    style: str = typer.Option(None, help="cifar | imagenet | nb201 [as searched: the genotype's own stem; cifar "
                                         "for published DARTS cells, nb201 for NB201 genotypes; imagenet recipe: "
                                         "imagenet]."),
    epochs: int = typer.Option(None, help="Epochs [600; digits 30; imagenet recipe 350]."),
    batch_size: int = typer.Option(None, help="Batch size [96; imagenet recipe 256]."),
    channels: int = typer.Option(None, help="Initial channels [36; digits 16; imagenet recipe 48]."),
    layers: int = typer.Option(None, help="Cells [20; digits 8; imagenet recipe 14]."),
    width: float = typer.Option(None, help="Chain genotypes: width multiplier of the skeleton [1]."),
    image_size: int = typer.Option(None, help="Image size of digits and folder datasets [32; imagenet recipe on "
                                              "folders 224]."),
    augment_policy: str = typer.Option(None, help="cifar | imagenet (folders only: random-resized crop + flip; "
                                                  "evaluation resizes to size/center-crop and center-crops) [cifar; "
                                                  "imagenet recipe on folders imagenet]."),
    center_crop: float = typer.Option(None, help="Evaluation crop of the imagenet policy: resize the shorter side "
                                                 "to image-size / this, then center-crop [0.875]."),
    augment: bool = typer.Option(None, "--augment/--no-augment", help="Training augmentation [on]."),
    optimizer: str = typer.Option(None, help="sgd | rmsprop (TensorFlow's RMSProp) [sgd; imagenet recipe "
                                             "rmsprop]."),
    lr: float = typer.Option(None, help="Peak learning rate [0.025; imagenet recipe 0.016 x batch size / 256]."),
    schedule: str = typer.Option(None, help="cosine (per epoch, to --lr-min) | step-exp (x lr-decay every "
                                            "lr-decay-epochs, per step) [cosine; imagenet recipe step-exp]."),
    warmup_epochs: int = typer.Option(None, help="Linear warm-up epochs from lr 0, per step [0; imagenet "
                                                 "recipe 5]."),
    lr_min: float = typer.Option(None, help="Final learning rate of the cosine schedule [0]."),
    lr_decay: float = typer.Option(None, help="Factor of the step-exp schedule [0.97]."),
    lr_decay_epochs: float = typer.Option(None, help="Epochs between step-exp decays [2.4]."),
    momentum: float = typer.Option(None, help="Momentum of SGD or RMSProp [0.9]."),
    rmsprop_decay: float = typer.Option(None, help="RMSProp's mean-square decay (torch's alpha) [0.9]."),
    rmsprop_eps: float = typer.Option(None, help="RMSProp's epsilon, inside the square root as in TF [1e-3]."),
    weight_decay: float = typer.Option(None, help="Weight decay [3e-4; imagenet recipe 1e-5]."),
    norm_weight_decay: bool = typer.Option(None, "--norm-weight-decay/--no-norm-weight-decay",
                                           help="Weight decay on batch-norm parameters too [on; imagenet recipe "
                                                "off]."),
    label_smoothing: float = typer.Option(None, help="Label smoothing of the training loss [0; imagenet recipe "
                                                     "0.1]."),
    dropout: float = typer.Option(None, help="Dropout before the classifier [0; imagenet recipe 0.2]."),
    ema_decay: float = typer.Option(None, help="Weight EMA decay, 0 for none; with it, evaluation, best.pt and "
                                               "last.pt use the averaged weights [0; imagenet recipe 0.9999]."),
    auxiliary: bool = typer.Option(None, "--auxiliary/--no-auxiliary", help="Auxiliary head [on]."),
    auxiliary_weight: float = typer.Option(None, help="Weight of the auxiliary head's loss [0.4]."),
    drop_path: float = typer.Option(None, help="Final drop-path probability, ramped up linearly [0.2; imagenet "
                                               "recipe 0]."),
    cutout: int = typer.Option(None, help="Cutout length, 0 for none [16; digits 8; imagenet recipe 0]."),
    grad_clip: float = typer.Option(None, help="Gradient-norm clip [5]."),
    val_portion: float = typer.Option(None, help="Fraction of the training split held out to select best.pt; "
                                                 "0 trains on all of it (best.pt = last epoch) [0.1]."),
    num_workers: int = typer.Option(None, help="Data-loading worker processes [0]."),
    seed: int = Seed,
    device: str = Device,
    deterministic: bool = Deterministic,
    cuda_graphs: str = CudaGraphs,
    nproc: int = NProc,
    sync_bn: bool = SyncBN,
) -> None:
    """Train a genotype's network from scratch (or a `dmc compile` network file) and report its top-1 test accuracy."""
    settings = dict(
        dataset=dataset, data_root=data_root, recipe=recipe, style=style, epochs=epochs, batch_size=batch_size,
        channels=channels, layers=layers, width=width, image_size=image_size, augment_policy=augment_policy,
        center_crop=center_crop, augment=augment, optimizer=optimizer, lr=lr, schedule=schedule,
        warmup_epochs=warmup_epochs, lr_min=lr_min, lr_decay=lr_decay, lr_decay_epochs=lr_decay_epochs,
        momentum=momentum, rmsprop_decay=rmsprop_decay, rmsprop_eps=rmsprop_eps, weight_decay=weight_decay,
        norm_weight_decay=norm_weight_decay, label_smoothing=label_smoothing, dropout=dropout, ema_decay=ema_decay,
        auxiliary=auxiliary, auxiliary_weight=auxiliary_weight, drop_path=drop_path, cutout=cutout,
        grad_clip=grad_clip, val_portion=val_portion, num_workers=num_workers, seed=seed, device=device,
        deterministic=deterministic, cuda_graphs=cuda_graphs, sync_bn=sync_bn)
    if resume is not None:
        if genotype is not None:
            raise InvalidInputError("--resume continues with the run folder's own genotype and settings",
                                    "drop the GENOTYPE argument")
        refuse_settings_on_resume({**settings, "out": out}, "training run")
        g, config, run_dir = None, TrainConfig(), resume
    else:
        if genotype is None:
            raise InvalidInputError("no genotype given", "pass a genotype file or a published name, e.g. DARTS_V2")
        g = genotype_or_network(genotype)
        given = {"--style": style, "--channels": channels, "--layers": layers, "--auxiliary": auxiliary,
                 "--width": width}
        if isinstance(g, CompiledNetwork) and any(v is not None for v in given.values()):
            raise InvalidInputError(f"{genotype} already fixes the network's build arguments",
                                    f"drop {', '.join(k for k, v in given.items() if v is not None)}, or train the "
                                    "genotype instead")
        chosen = g.genotype if isinstance(g, CompiledNetwork) else g
        family = family_of(chosen)
        network_settings = {"channels": channels, "layers": layers, "width": width}
        if style is not None and not builds_style(family, style):
            network_settings["style"] = style  # a cell style for a chain genotype (DARTS's and NB201's convert)
        if auxiliary and not family.has_auxiliary_head:
            network_settings["auxiliary"] = auxiliary
        family.check_settings(network_settings, f"{genotype} is a {chosen.kind} genotype")
        config = TrainConfig.for_dataset(dataset or "digits", **{k: v for k, v in settings.items() if k != "dataset"})
        run_dir = out or Path("runs") / f"train-{Path(genotype).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_processes(nproc, _train, g, config, run_dir, resume is not None, run_dir=run_dir)


def _train(source, config: TrainConfig, run_dir: Path, resume: bool) -> None:
    """The command's work, in each process of the run: train (or resume), then the report (one process)."""
    console = Console()
    with epoch_progress(console, label="train") as on_event:
        result = train(source, config, run_dir, resume=resume, on_event=on_event)
    if not is_main_process():
        return
    selected = ("the last epoch" if result.best_val_acc is None else
                f"best validation accuracy {result.best_val_acc:.4f}")
    console.print(f"[bold]top-1 test accuracy {result.test_acc:.4f}[/] after the last epoch; best.pt (epoch "
                  f"{result.best_epoch}, {selected}): {result.best_test_acc:.4f}; "
                  f"{result.parameters:,} parameters", soft_wrap=True)
    console.print(f"files: {result.run_dir}/last.pt, best.pt, history.jsonl, result.json, tb/", soft_wrap=True)
