"""`dmc viz`: every picture of a search run folder, or the pictures of one genotype (cells or chain layers)."""

from __future__ import annotations

from pathlib import Path

from dmc.compiler.source import resolve_genotype
from dmc.errors import InvalidInputError
from dmc.genotype import published_genotypes
from dmc.runfolder import SEARCH_RUN, RunFolder, read_history
from dmc.search.derive_run import derive_run
from dmc.viz.cell import draw_genotype
from dmc.viz.history import plot_alphas, plot_beta, plot_cost, plot_hessian


def visualize(source: str | Path, out_dir: str | Path) -> list[Path]:
    """Draws ``source`` into ``out_dir`` and returns the files written.

    A search run folder gives its derived cells (``genotype_<cell>.png/.svg``, from ``genotype.json`` or,
    while the run is unfinished, its best checkpoint), ``alphas_<cell>.png``, ``beta.png`` and, if the run tracked
    them, ``hessian.png`` and ``cost.png`` (``--cost``: expected and derived cost per epoch); a chain search gives
    ``genotype_layers.png/.svg`` and ``alphas_layers.png`` instead of the cell pictures. A genotype (file or
    published name) gives its cells (or layers) only.
    """
    source, out_dir = Path(source), Path(out_dir)
    run_folder = (source / "history.jsonl").is_file()
    if not source.is_dir() or (not run_folder and str(source) in published_genotypes()):
        # a published name wins over a folder of that name that is no run (e.g. an earlier `dmc viz NAME -o NAME`)
        return draw_genotype(resolve_genotype(source), out_dir, _name(source))
    if not run_folder:
        raise InvalidInputError(f"{source}: not a search run folder (no history.jsonl)",
                                "pass a folder written by `dmc search`, or a genotype file")
    history = read_history(source)
    if not history:
        raise InvalidInputError(f"{source}: the search has no finished epoch yet", "draw it after its first epoch")
    space = RunFolder(source, SEARCH_RUN).read_space()
    genotype = resolve_genotype(source / "genotype.json") if (source / "genotype.json").is_file() \
        else derive_run(source, "best")
    paths = draw_genotype(genotype, out_dir, "genotype")
    paths += [plot_alphas(history, space, group, out_dir / f"alphas_{group}.png") for group in space.alpha_groups]
    paths.append(plot_beta(history, out_dir / "beta.png"))
    extra = [plot_hessian(history, out_dir / "hessian.png"), plot_cost(history, out_dir / "cost.png")]
    return [*paths, *(path for path in extra if path is not None)]


def _name(source: Path) -> str:
    name = source.name
    for suffix in (".genotype.json", ".json", ".txt"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
