"""`dmc train`: train a genotype's network from scratch (the paper's evaluation protocol)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from dmc.api import CompiledNetwork, TrainConfig, genotype_or_network, train
from dmc.cli.app import command
from dmc.cli.progress import epoch_progress
from dmc.cli.run_options import BatchSize, DataRoot, Dataset, Deterministic, Device, Seed
from dmc.errors import InvalidInputError


@command(name="train")
def train_command(
    genotype: str = typer.Argument(None, help="Genotype file or published name (DARTS_V2, cifar10_s3_0, ...), or "
                                              "a network file of `dmc compile` (trained as compiled, from its weights)."),
    dataset: str = Dataset,
    data_root: str = DataRoot,
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (default: runs/train-<genotype>-<time>)."),
    resume: Path = typer.Option(None, help="Continue the training in this run folder exactly where it stopped."),
    style: str = typer.Option(None, help="cifar | imagenet | nb201 [as searched: the genotype's own stem; cifar "
                                         "for published DARTS cells, nb201 for NB201 genotypes]."),
    epochs: int = typer.Option(None, help="Epochs [600; digits 30]."),
    batch_size: int = BatchSize,
    channels: int = typer.Option(None, help="Initial channels [36; digits 16]."),
    layers: int = typer.Option(None, help="Cells [20; digits 8]."),
    lr: float = typer.Option(None, help="Learning rate, cosine-annealed to 0 [0.025]."),
    auxiliary: bool = typer.Option(None, "--auxiliary/--no-auxiliary", help="Auxiliary head, weight 0.4 [on]."),
    drop_path: float = typer.Option(None, help="Final drop-path probability, ramped up linearly [0.2]."),
    cutout: int = typer.Option(None, help="Cutout length, 0 for none [16; digits 8]."),
    val_portion: float = typer.Option(None, help="Fraction of the training split held out to select best.pt; "
                                                 "0 trains on all of it (best.pt = last epoch) [0.1]."),
    seed: int = Seed,
    device: str = Device,
    deterministic: bool = Deterministic,
) -> None:
    """Train a genotype's network from scratch (or a `dmc compile` network file) and report its top-1 test accuracy."""
    console = Console()
    if resume is not None:
        if genotype is not None:
            raise InvalidInputError("--resume continues with the run folder's own genotype and settings",
                                    "drop the GENOTYPE argument")
        g, config, run_dir = None, TrainConfig(), resume
    else:
        if genotype is None:
            raise InvalidInputError("no genotype given", "pass a genotype file or a published name, e.g. DARTS_V2")
        g = genotype_or_network(genotype)
        given = {"--style": style, "--channels": channels, "--layers": layers, "--auxiliary": auxiliary}
        if isinstance(g, CompiledNetwork) and any(v is not None for v in given.values()):
            raise InvalidInputError(f"{genotype} already fixes the network's build arguments",
                                    f"drop {', '.join(k for k, v in given.items() if v is not None)}, or train the "
                                    "genotype instead")
        config = TrainConfig.for_dataset(
            dataset or "digits", data_root=data_root, style=style,
            epochs=epochs, batch_size=batch_size, channels=channels, layers=layers, lr=lr, auxiliary=auxiliary,
            drop_path=drop_path, cutout=cutout, val_portion=val_portion, seed=seed, device=device,
            deterministic=deterministic)
        run_dir = out or Path("runs") / f"train-{Path(genotype).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    with epoch_progress(console, label="train") as on_event:
        result = train(g, config, run_dir, resume=resume is not None, on_event=on_event)
    selected = ("the last epoch" if result.best_val_acc is None else
                f"best validation accuracy {result.best_val_acc:.4f}")
    console.print(f"[bold]top-1 test accuracy {result.test_acc:.4f}[/] after the last epoch; best.pt (epoch "
                  f"{result.best_epoch}, {selected}): {result.best_test_acc:.4f}; "
                  f"{result.parameters:,} parameters", soft_wrap=True)
    console.print(f"files: {result.run_dir}/last.pt, best.pt, history.jsonl, result.json, tb/", soft_wrap=True)
