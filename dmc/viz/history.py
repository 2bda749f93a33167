"""A search's history as pictures: each edge's (or chain layer's) softmax weights over epochs, beta with the
accuracies, and (where tracked) the Hessian's dominant eigenvalue."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from dmc.families import AnySpace
from dmc.families.cell.space import CellSpace
from dmc.families.chain.space import ChainSpace
from dmc.runfolder import DamagedRunFile
from dmc.viz.cell import node_names, text_label
from dmc.viz.figure import pyplot, save_figure

SKIPS, SKIP_COLOR = ("skip_connect", "skip"), "#c0392b"


def _series(history: list[dict[str, Any]], what: str, get) -> list[float]:
    """``get(record)`` of every record; a record without that number is named as damaged."""
    values = []
    for record in history:
        try:
            value = get(record)
        except (KeyError, IndexError, TypeError):
            value = None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DamagedRunFile(f"history.jsonl: the record of epoch {record.get('epoch')} is damaged (no {what})")
        values.append(value)
    return values


def plot_alphas(history: list[dict[str, Any]], space: AnySpace, group: str,
                path: str | Path) -> Path:
    """One panel per edge (or chain layer), one line per candidate op (its softmax weight per epoch); a PNG."""
    fig = alpha_figure(history, space, group)
    return save_figure(fig, path, dpi=110, tight=False)[0]


def alpha_figure(history: list[dict[str, Any]], space: AnySpace, group: str):
    """The figure of :func:`plot_alphas`: panels in row order, each line labelled with its candidate's name
    (chain layers drop the ``mbconv_`` prefix), one colour per candidate name in every panel."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    rows = space.candidates(group)
    chain = space.row_noun == "layer"
    epochs = [r["epoch"] for r in history]
    cols = min(6 if chain else 4, len(rows))
    grid = math.ceil(len(rows) / cols)
    title_h, legend_h = 0.4, 0.2 + 0.2 * math.ceil(len({op for ops in rows for op in ops}) / 5)  # inches
    height = 2.2 * grid + title_h + legend_h
    fig, axes = plt.subplots(grid, cols, figsize=(3.4 * cols, height), squeeze=False, sharex=True)
    colors = _candidate_colors(space.operations)
    for e, ops in enumerate(rows):
        ax = axes[e // cols][e % cols]
        for k, op in enumerate(ops):
            weights = _series(history, f"{group} alpha {e},{k}", lambda r, e=e, k=k: r["alphas"][group][e][k])
            skip = op in SKIPS
            ax.plot(epochs, weights, label=op.removeprefix("mbconv_"), lw=2.2 if skip else 1.2, color=colors[op])
        ax.set_title(_panel_title(space, e), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if e + cols >= len(rows):  # the lowest panel of its column: sharex would hide its epochs
            ax.tick_params(labelbottom=True)
    for e in range(len(rows), grid * cols):
        axes[e // cols][e % cols].axis("off")
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 5), fontsize=8)
    fig.suptitle("softmax(alpha) per layer over epochs" if chain
                 else f"{group} cell: softmax(alpha) per edge over epochs")
    fig.tight_layout(rect=(0, legend_h / height, 1, 1))  # tight_layout leaves room for the suptitle itself
    return fig


def _panel_title(space: AnySpace, row: int) -> str:
    """``layer 3: stage 1, 24->32, s2`` (chain spaces) or ``edge 3: c_{k-1} -> node 1``, the edge's input named
    as the cell pictures name it (cell inputs, then nodes from 0)."""
    if space.row_noun == "layer":
        slot = cast(ChainSpace, space).layer_slots()[row]
        return f"layer {row}: stage {slot.stage}, {slot.c_in}->{slot.c_out}" + (", s2" if slot.stride == 2 else "")
    cells = cast(CellSpace, space)
    node, source = cells.edges[row]
    return f"edge {row}: {text_label(node_names(cells.nodes, cells.inputs)[source])} -> node {node}"


def _candidate_colors(operations: list[str]) -> dict[str, Any]:
    """A colour per operation name (the same in every panel: chain layers offer different candidate lists);
    skips are red."""
    palette = [c for i, c in enumerate(_listed_colors("tab10")) if i != 3]  # tab10's red is the skips'
    if sum(op not in SKIPS for op in operations) > len(palette):
        palette = _listed_colors("tab20")
    others = iter(palette * (1 + len(operations) // len(palette)))
    return {op: SKIP_COLOR if op in SKIPS else next(others) for op in operations}


def _listed_colors(name: str) -> list[Any]:
    """The colours of matplotlib's listed colormap ``name`` (tab10, tab20: RGB tuples)."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    cmap = colormaps[name]
    assert isinstance(cmap, ListedColormap)
    return list(cast(Sequence[Any], cmap.colors))  # typed as any array-like or colour: a list of colours here


def plot_beta(history: list[dict[str, Any]], path: str | Path) -> Path:
    """Beta (the auxiliary skip's scale) per epoch, with the train and validation accuracies; a PNG."""
    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    betas = _series(history, "beta", lambda r: r["beta"])
    train_acc = _series(history, "train_acc", lambda r: r["train_acc"])
    val_acc = _series(history, "val_acc", lambda r: r["val_acc"])
    ax.plot(epochs, betas, "o-", color="#8e44ad", label="beta")
    ax.set_xlabel("epoch")
    ax.set_ylabel("beta")
    ax.set_ylim(-0.05, max(1.0, *betas) + 0.05)
    curves = [(epochs, train_acc, "--", "#27ae60", "train acc"), (epochs, val_acc, ":", "#2980b9", "val acc")]
    return _finish_with_accuracy(fig, ax, curves, "DARTS- auxiliary skip scale beta", "center right", path)


def plot_hessian(history: list[dict[str, Any]], path: str | Path) -> Path | None:
    """The dominant eigenvalue of the validation loss's Hessian w.r.t. alpha at the epochs it was tracked
    (``--hessian-every``), with the validation accuracy; a PNG, or None if the run did not track it."""
    tracked = [r for r in history if "hessian_eigenvalue" in r]
    if not tracked:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot([r["epoch"] for r in tracked], [r["hessian_eigenvalue"] for r in tracked], "o-", color="#d35400",
            label="dominant eigenvalue")
    ax.set_xlabel("epoch")
    ax.set_ylabel("eigenvalue")
    val_acc = _series(history, "val_acc", lambda r: r["val_acc"])
    curves = [([r["epoch"] for r in history], val_acc, ":", "#2980b9", "val acc")]
    return _finish_with_accuracy(fig, ax, curves, "Hessian of the validation loss w.r.t. alpha", "best", path)


def plot_cost(history: list[dict[str, Any]], path: str | Path) -> Path | None:
    """The supernet's expected cost and the cost of each epoch's derived network (``--cost``), with the
    validation accuracy; a PNG, or None if the run searched for accuracy alone."""
    tracked = [r for r in history if "expected_cost" in r]
    if not tracked:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    epochs = [r["epoch"] for r in tracked]
    ax.plot(epochs, [r["expected_cost"] for r in tracked], "o-", color="#c0392b", label="expected (supernet)")
    ax.plot(epochs, [r["derived_cost"] for r in tracked], "s--", color="#7f8c8d", label="derived network")
    ax.set_xlabel("epoch")
    ax.set_ylabel(tracked[0].get("cost_unit", "cost"))
    val_acc = _series(history, "val_acc", lambda r: r["val_acc"])
    curves = [([r["epoch"] for r in history], val_acc, ":", "#2980b9", "val acc")]
    return _finish_with_accuracy(fig, ax, curves, "What the searched network costs", "best", path)


def _finish_with_accuracy(fig, ax, curves, title: str, legend_at: str, path: str | Path) -> Path:
    """Accuracy curves ``(epochs, values, style, colour, label)`` on a right-hand axis of ``ax``, one legend for
    both axes and the title; saves the PNG."""
    acc = ax.twinx()
    for epochs, values, style, color, label in curves:
        acc.plot(epochs, values, style, color=color, label=label)
    acc.set_ylabel("accuracy")
    acc.set_ylim(0, 1)
    lines = ax.get_legend_handles_labels()[0] + acc.get_legend_handles_labels()[0]
    ax.legend(lines, [line.get_label() for line in lines], loc=legend_at, fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110, tight=False)[0]
