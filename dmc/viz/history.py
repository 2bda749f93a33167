"""A search's history as pictures: each edge's softmax weights over epochs, and beta with the accuracies."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dmc.runfolder import DamagedRunFile
from dmc.space import SearchSpace
from dmc.viz.cell import pyplot


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


def plot_alphas(history: list[dict[str, Any]], space: SearchSpace, cell_type: str, path: str | Path) -> Path:
    """One panel per edge, one line per candidate op (its softmax weight per epoch); writes a PNG."""
    plt = pyplot()
    edges = space.cell(cell_type).edges
    epochs = [r["epoch"] for r in history]
    cols = min(4, len(edges))
    rows = math.ceil(len(edges) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.4 * rows), squeeze=False, sharex=True)
    for e, ops in enumerate(edges):
        ax = axes[e // cols][e % cols]
        src, dst = space.edges[e]
        for k, op in enumerate(ops):
            weights = _series(history, f"{cell_type} alpha {e},{k}", lambda r: r["alphas"][cell_type][e][k])
            ax.plot(epochs, weights, label=op,
                    lw=2.2 if op == "skip_connect" else 1.2, color="#c0392b" if op == "skip_connect" else None)
        ax.set_title(f"edge {e}: {src} -> node {dst}", fontsize=9)
        ax.tick_params(labelsize=7)
    for e in range(len(edges), rows * cols):
        axes[e // cols][e % cols].axis("off")
    handles, labels = {}, []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 5), fontsize=8)
    fig.suptitle(f"{cell_type} cell: softmax(alpha) per edge over epochs")
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    acc = ax.twinx()
    acc.plot(epochs, train_acc, "--", color="#27ae60", label="train acc")
    acc.plot(epochs, val_acc, ":", color="#2980b9", label="val acc")
    acc.set_ylabel("accuracy")
    acc.set_ylim(0, 1)
    lines = ax.get_legend_handles_labels()[0] + acc.get_legend_handles_labels()[0]
    ax.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize=8)
    ax.set_title("DARTS- auxiliary skip scale beta")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
