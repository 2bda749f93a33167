"""`dmc ablate`: the beta0 ablation (the DARTS- paper's Table 6) as one resumable grid of searches and one report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from dmc.api import TrainConfig, ablate, is_main_process
from dmc.cli.app import command
from dmc.cli.progress import epoch_progress
from dmc.cli.run_options import BatchSize, DataRoot, Dataset, Device, number_list, search_settings


@command(name="ablate")
def ablate_command(
    space: str = typer.Argument(..., help="Bundled space name or spec file, e.g. rdarts_s3."),
    out: Path = typer.Option(..., "--out", "-o", help="Grid folder: beta0-<b>/seed-<s>/ runs and the report. Run "
                                                      "the same command again to continue an interrupted grid."),
    beta0: str = typer.Option("0,0.4,0.7,1", help="Comma-separated beta0 values (0: DARTS)."),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds."),
    config: Path = typer.Option(None, help="YAML file of search settings (any SearchConfig field); flags override "
                                           "it."),
    dataset: str = Dataset,
    data_root: str = DataRoot,
    epochs: int = typer.Option(None, help="Search epochs [50]."),
    batch_size: int = BatchSize,
    channels: int = typer.Option(None, help="Initial channels [16]."),
    layers: int = typer.Option(None, help="Cells [8]."),
    image_size: int = typer.Option(None, help="Image side for digits and image folders [32]."),
    beta_schedule: str = typer.Option(None, help="Beta decay [linear]."),
    method: str = typer.Option(None, help="darts | pc-darts [darts]."),
    device: str = Device,
    train_epochs: int = typer.Option(None, help="Also train each found network for this many epochs (the dataset's "
                                                "training recipe otherwise) and report its test accuracy."),
) -> None:
    """Search SPACE once per beta0 and seed, then report per beta0 (mean ± std over seeds): skip connections of the
    normal cell per epoch and at the end, the supernet's validation accuracy and, with --train-epochs, the derived
    networks' test accuracy (ablation.md, ablation.json, ablation.png)."""
    overrides = dict(space=space, dataset=dataset, data_root=data_root, epochs=epochs, batch_size=batch_size,
                     channels=channels, layers=layers, image_size=image_size, beta_schedule=beta_schedule,
                     method=method, device=device)
    settings = search_settings(config, overrides)
    train_config = None
    if train_epochs is not None:
        train_config = TrainConfig.for_dataset(settings.dataset, data_root=settings.data_root, epochs=train_epochs,
                                               image_size=settings.image_size, device=settings.device)
    console = Console()
    with epoch_progress(console) as on_event:
        result = ablate(settings, out, number_list(beta0, "--beta0", float, "0,0.4,0.7,1"),
                        number_list(seeds, "--seeds", example="0,1,2"), train_config, on_event)
    if not is_main_process():
        return
    for row in result.summary():
        trained = f", test acc {row['test_acc']['mean'] * 100:.2f} ± {row['test_acc']['std'] * 100:.2f} %" \
            if "test_acc" in row else ""
        console.print(f"beta0 {row['beta0']:g}: {row['skips']['mean']:.1f} ± {row['skips']['std']:.1f} skips, "
                      f"supernet val acc {row['val_acc']['mean'] * 100:.2f} ± {row['val_acc']['std'] * 100:.2f} %"
                      f"{trained}", soft_wrap=True)
    console.print(f"report: {result.report}", soft_wrap=True)
