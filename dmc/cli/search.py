"""`dmc search`: a DARTS- (or, with --beta0 0, DARTS) search into a run folder."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from dmc.api import (
    CONVENTIONS,
    METHODS,
    SCHEDULES,
    SearchConfig,
    is_main_process,
    search_seeds,
)
from dmc.api import search as run_search
from dmc.cli.app import command
from dmc.cli.processes import NProc, SyncBN, run_processes
from dmc.cli.progress import epoch_progress
from dmc.cli.run_options import (
    BatchSize,
    CudaGraphs,
    DataRoot,
    Dataset,
    Deterministic,
    Device,
    Seed,
    number_list,
    refuse_settings_on_resume,
    search_settings,
)
from dmc.errors import InvalidInputError


@command(name="search")
def search_command(
    space: str = typer.Argument(None, help="Bundled space name (darts_s0, rdarts_s3, nb201, tiny, ...) or spec file."),
    dataset: str = Dataset,
    data_root: str = DataRoot,
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (default: runs/search-<space>-<time>)."),
    resume: Path = typer.Option(None, help="Continue the search in this run folder exactly where it stopped."),
    config: Path = typer.Option(None, help="YAML file of settings (any SearchConfig field); flags override it."),
    epochs: int = typer.Option(None, help="Search epochs [50]."),
    batch_size: int = BatchSize,
    channels: int = typer.Option(None, help="Initial channels [the space's, 16]."),
    layers: int = typer.Option(None, help="Cells (cells per stage for nb201) [the space's, 8]."),
    width: float = typer.Option(None, help="Chain spaces: width multiplier of the skeleton [the space's, 1]."),
    image_size: int = typer.Option(None, help="Image side for digits and image folders [32; chain spaces 224]."),
    augment: bool = typer.Option(None, "--augment/--no-augment", help="Training augmentation [on]."),
    lr: float = typer.Option(None, help="Weight learning rate, cosine-annealed [0.025]."),
    arch_lr: float = typer.Option(None, help="Alpha learning rate (Adam) [3e-4]."),
    order: int = typer.Option(None, help="1: first-order; 2: second-order (unrolled) DARTS [1]."),
    method: str = typer.Option(None, help=f"{' | '.join(METHODS)}: PC-DARTS's partial channels and edge "
                                          "normalisation (cell spaces); with beta0 > 0 the DARTS- variant [darts]."),
    partial_channels: int = typer.Option(None, help="pc-darts: K, each edge's candidates see 1/K of its channels "
                                                    "[4]."),
    channel_shuffle: bool = typer.Option(None, "--channel-shuffle/--no-channel-shuffle",
                                         help="pc-darts: PC-DARTS's channel shuffle on each edge [on]."),
    arch_warmup: int = typer.Option(None, help="Epochs of weight training before the architecture steps start "
                                               "(PC-DARTS: 15 of 50; P-DARTS: 10 of 25 per stage) [0]."),
    stage_layers: str = typer.Option(None, help="p-darts: cells of each stage, comma-separated [5,11,17]."),
    stage_keep: str = typer.Option(None, help="p-darts: candidates kept per edge after each stage but the last "
                                              "[5,3]."),
    skip_dropout: str = typer.Option(None, help="P-DARTS's prior: skip-connection dropout, one rate per stage "
                                                "(P-DARTS on CIFAR-10: 0.1,0.4,0.7) [none]."),
    max_skips: int = typer.Option(None, help="P-DARTS's prior: at most M skip connections in the final normal "
                                             "cell (P-DARTS: 2) [no limit]."),
    beta_schedule: str = typer.Option(None, help=f"Beta decay: {', '.join(SCHEDULES)} [linear]."),
    beta0: float = typer.Option(None, help="Initial beta [1]; 0 runs plain DARTS."),
    beta_start: int = typer.Option(None, help="Epoch where beta starts to decay [0]."),
    beta_stop: int = typer.Option(None, help="Epoch where beta reaches 0 (the drop epoch of 'step') [epochs]; "
                                             "official convention: epoch after which beta stays frozen [50]."),
    beta_convention: str = typer.Option(None, help=f"Beta formulas: {' | '.join(CONVENTIONS)} (the official "
                                                   "DARTS- code's, normalised by --beta-max-epoch) [dmc]."),
    beta_max_epoch: int = typer.Option(None, help="Official convention only: its decay_max_epoch [50]."),
    seed: int = Seed,
    seeds: str = typer.Option(None, help="Comma-separated seeds: independent searches in OUT/seed-<s>."),
    device: str = Device,
    deterministic: bool = Deterministic,
    cuda_graphs: str = CudaGraphs,
    kernels: str = typer.Option(None, help="Kernels of the mixed sums and ReLU-depthwise convs: auto | fused | "
                                           "reference [auto = fused where its kernels build and pass their check]."),
    channels_last: bool = typer.Option(None, "--channels-last/--no-channels-last",
                                       help="Channels-last activations [on]."),
    recompute_edges: bool = typer.Option(None, "--recompute-edges/--no-recompute-edges",
                                         help="Recompute in backward the mixed edges that hold the most memory: "
                                              "far less memory, some more time."),
    torch_compile: bool = typer.Option(None, "--torch-compile/--no-torch-compile",
                                       help="torch.compile each mixed edge (first steps compile, later ones are "
                                            "faster)."),
    compile_alias: bool = typer.Option(None, "--compile/--no-compile", hidden=True,
                                       help="Deprecated name of --torch-compile."),
    cost: str = typer.Option(None, help="Search for a cost too: latency:LUT.json (`dmc latency table`; chain "
                                        "spaces) | macs | params (counted as the derived network has them)."),
    cost_target: float = typer.Option(None, help="Target cost, in the cost's unit (ms, millions of MACs or of "
                                                 "parameters); not for --cost-loss fbnet."),
    cost_loss: str = typer.Option(None, help="How the cost enters the architecture loss: fbnet | proxyless-mul | "
                                             "proxyless-add | tfnas [proxyless-mul]."),
    cost_weight: float = typer.Option(None, help="The rule's weight (a, or lambda) [the authors': 0.2; 0.1 for the "
                                                 "additive rules]."),
    cost_exponent: float = typer.Option(None, help="The multiplicative rules' exponent b [FBNet 0.6, ProxylessNAS "
                                                   "0.3]."),
    hessian_every: int = typer.Option(None, help="Every N epochs, record the dominant eigenvalue of the validation "
                                                 "loss's Hessian w.r.t. alpha (R-DARTS's indicator) [0: never]."),
    hessian_samples: int = typer.Option(None, help="Validation images the Hessian is taken on [256]."),
    bench: str = typer.Option(None, help="nb201 searches: NATS-Bench's topology archive folder; each epoch's cell "
                                         "is looked up and its benchmark accuracies recorded in the history."),
    nproc: int = NProc,
    sync_bn: bool = SyncBN,
) -> None:
    """Search an architecture with DARTS- (auxiliary skip with decaying beta)."""
    if compile_alias is not None:
        typer.echo("warning: --compile/--no-compile is deprecated: use --torch-compile/--no-torch-compile", err=True)
        torch_compile = compile_alias if torch_compile is None else torch_compile
    overrides = dict(space=space, dataset=dataset, data_root=data_root, epochs=epochs, batch_size=batch_size,
                     channels=channels, layers=layers, width=width, image_size=image_size, augment=augment, lr=lr,
                     arch_lr=arch_lr, order=order, method=method, partial_channels=partial_channels,
                     channel_shuffle=channel_shuffle, arch_warmup=arch_warmup,
                     stage_layers=number_list(stage_layers, "--stage-layers", example="5,11,17"),
                     stage_keep=number_list(stage_keep, "--stage-keep", example="5,3"),
                     skip_dropout=number_list(skip_dropout, "--skip-dropout", float, "0.1,0.4,0.7"),
                     max_skips=max_skips,
                     beta_schedule=beta_schedule, beta0=beta0, beta_start=beta_start, beta_stop=beta_stop,
                     beta_convention=beta_convention, beta_max_epoch=beta_max_epoch, seed=seed, device=device,
                     deterministic=deterministic, kernels=kernels, channels_last=channels_last,
                     recompute_edges=recompute_edges, torch_compile=torch_compile, cuda_graphs=cuda_graphs,
                     hessian_every=hessian_every, cost=cost, cost_target=cost_target, cost_loss=cost_loss,
                     cost_weight=cost_weight, cost_exponent=cost_exponent,
                     hessian_samples=hessian_samples, sync_bn=sync_bn, bench=bench)
    if resume is not None:
        if space is not None or config is not None:
            raise InvalidInputError("--resume continues with the run folder's own settings",
                                    "drop the SPACE argument and --config")
        refuse_settings_on_resume({**overrides, "out": out, "seeds": seeds}, "search")
        run_processes(nproc, _search, SearchConfig(), resume, None, True, run_dir=resume)
        return
    if config is None and space is None:
        raise InvalidInputError("no search space given", "pass a space, e.g. `dmc search rdarts_s3`, or --config FILE")
    cfg = search_settings(config, overrides)
    out = out or Path("runs") / f"search-{Path(cfg.space).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_processes(nproc, _search, cfg, out, number_list(seeds, "--seeds"), False, run_dir=out)


def _search(config: SearchConfig, out: Path, seeds: list[int] | None, resume: bool) -> None:
    """The command's work, in each process of the run: search (or resume), then the report (one process)."""
    console = Console()
    with epoch_progress(console) as on_event:
        if seeds:
            results = search_seeds(config, out, seeds, resume=resume, on_event=on_event)
        else:
            results = [run_search(config, out, resume=resume, on_event=on_event)]
    if is_main_process():
        _report(console, results)


def _report(console: Console, results) -> None:
    for result in results:
        genotype = result.genotype
        text = genotype.describe()
        console.print(f"[bold]{result.run_dir}[/]: best validation accuracy {result.best_val_acc:.4f} "
                      f"at epoch {result.best_epoch}", soft_wrap=True)
        console.print(f"  genotype: {text}", soft_wrap=True)
        stages = sorted(p.name for p in result.run_dir.glob("stage-*") if p.is_dir())
        runs = (f"stage folders {', '.join(stages)} (each a search run)" if stages
                else "history.jsonl, best.pt, last.pt, tb/")
        console.print(f"  files: {result.run_dir / 'genotype.json'}, {runs}", soft_wrap=True)
