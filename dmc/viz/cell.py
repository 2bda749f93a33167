"""A derived cell as a picture: inputs, intermediate nodes and the output, edges labelled with their op.

:func:`draw_genotype` draws any genotype: cells here, chain genotypes by :mod:`dmc.viz.chain`.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from dmc.families import AnyGenotype
from dmc.families.cell.genotype import CellGenotype, Genotype
from dmc.families.chain.genotype import ChainGenotype
from dmc.viz.chain import draw_chain
from dmc.viz.figure import png_and_svg, pyplot, save_figure

SKIP_COLOR, OP_COLOR = "#c0392b", "#34495e"


def node_names(nodes: int, inputs: int) -> list[str]:
    """What a cell's indices are called: its inputs (c_{k-2}, c_{k-1} for DARTS; 'input' for one-input cells),
    then its intermediate nodes 0..nodes-1."""
    names = ["c_{k-2}", "c_{k-1}"] if inputs == 2 else ["input"]
    return names + [str(i) for i in range(nodes)]


def text_label(name: str) -> str:
    """``name`` as matplotlib text: subscripted names (c_{k-1}) as mathtext."""
    return f"${name}$" if "_" in name else name


def draw_cell(cell: CellGenotype, inputs: int, title: str, stem: str | Path) -> list[Path]:
    """Writes ``stem.png`` and ``stem.svg``; returns their paths. Skip connections are drawn in red."""
    plt = pyplot()
    from matplotlib.patches import FancyArrowPatch

    names = node_names(len(cell.nodes), inputs)
    n = len(cell.nodes)
    pos = {i: (0.0, (inputs - 1) / 2 - i) for i in range(inputs)}
    for i in range(n):
        pos[inputs + i] = (1.0 + i, 0.9 * (-1) ** i)
    out = inputs + n
    pos[out] = (n + 1.2, 0.0)
    fig, ax = plt.subplots(figsize=(2.2 * (n + 2), 4.2))
    ax.set_xlim(-0.6, n + 1.8)
    ax.set_ylim(-1.7, 1.7)
    to_display, to_data = ax.transData.transform, ax.transData.inverted().transform
    for dst, node in enumerate(cell.nodes, start=inputs):
        for op, src in node:
            (x0, y0), (x1, y1) = pos[src], pos[dst]
            rad = 0.25 if (dst - src) > 1 else 0.0
            color = SKIP_COLOR if op == "skip_connect" else OP_COLOR
            ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                         mutation_scale=14, color=color, lw=1.6, shrinkA=18, shrinkB=18))
            # the label sits on the curve: the quadratic Bezier's midpoint, computed where arc3 bends (display space)
            (a0, b0), (a1, b1) = to_display((x0, y0)), to_display((x1, y1))
            mx, my = to_data(((a0 + a1) / 2 + rad * (b1 - b0) / 2, (b0 + b1) / 2 - rad * (a1 - a0) / 2))
            ax.text(mx, my, op, ha="center", va="center", fontsize=8, color=color,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.9))
    for src in cell.concat:
        ax.add_patch(FancyArrowPatch(pos[src], pos[out], arrowstyle="-|>", mutation_scale=12, color="#7f8c8d",
                                     lw=1.0, ls="--", shrinkA=18, shrinkB=18))
    labels = {**dict(enumerate(names)), out: "c_{k}" if inputs == 2 else "output"}
    for i, (x, y) in pos.items():
        fill = "#d5e8d4" if i < inputs else "#fff2cc" if i < out else "#dae8fc"
        ax.text(x, y, text_label(labels[i]), ha="center", va="center", fontsize=11,
                bbox=dict(boxstyle="round,pad=0.45", fc=fill, ec="#555555"))
    ax.axis("off")
    ax.set_title(title)
    return save_figure(fig, *png_and_svg(stem))


def draw_genotype(genotype: AnyGenotype, out_dir: str | Path, name: str = "genotype") -> list[Path]:
    """One picture per cell type: ``<name>_normal.{png,svg}`` (and ``_reduce``); a chain genotype gives
    ``<name>_layers.{png,svg}`` (see :func:`draw_chain`)."""
    if genotype.groups == ("layers",):  # a chain: one picture of its layers
        return draw_chain(cast(ChainGenotype, genotype), Path(out_dir) / f"{name}_layers", name)
    cells = cast(Genotype, genotype)
    paths = []
    for cell_type, cell in cells.cells.items():
        skips = sum(op == "skip_connect" for op, _ in cell.edges)
        title = f"{name}: {cell_type} cell ({skips} skip connection{'s' if skips != 1 else ''})"
        paths += draw_cell(cell, cells.inputs, title, Path(out_dir) / f"{name}_{cell_type}")
    return paths
