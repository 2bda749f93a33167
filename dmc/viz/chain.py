"""A chain genotype as a picture: the stem and first block, one box per searchable layer (a row per stage,
in order), and the head, every fixed part with its width.

A layer's box reads ``k7 e3`` (depthwise kernel, expansion) over its details (``SE``, ``g2``, ``s2``); its
fill is the kernel's colour and a stride-2 layer has a bold border. A 'skip' where the shape is kept removes
the layer: a dashed grey box reading ``skip`` / ``removed``. A 'skip' that changes the shape is a 1x1 conv
(``skip`` / ``1x1 conv``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dmc.families.chain.genotype import ChainGenotype
from dmc.families.chain.macro import LayerSlot
from dmc.ops import OPS
from dmc.viz.figure import png_and_svg, pyplot, save_figure

KERNEL_FILLS = {3: "#dae8fc", 5: "#d5e8d4", 7: "#ffe6cc"}
PROJECTION_FILL, FIXED_FILL, REMOVED_GREY = "#f8cecc", "#eeeeee", "#999999"
MAX_COLUMNS = 6
"""Layers per row; a longer stage continues on the next row."""
BOX_W, BOX_H, STEP_X, STEP_Y = 1.0, 0.62, 1.35, 1.0
MBCONV = re.compile(r"mbconv_k(?P<k>\d+)_e(?P<e>\d+)(?P<g2>_g2)?(?P<se>_se)?")


@dataclass(frozen=True)
class LayerBox:
    """What one layer's box says (``label`` over ``detail``) and how it is drawn."""

    index: int
    label: str
    detail: str
    fill: str
    removed: bool
    stride: int


def layer_box(op: str, slot: LayerSlot) -> LayerBox:
    """The box of layer ``slot`` choosing ``op``: ``k7 e3`` / ``SE g2 s2``, or ``skip`` / ``removed``."""
    stride = "s2" if slot.stride == 2 else ""
    if OPS[op].skip:
        removed = slot.keeps_shape
        detail = "removed" if removed else " ".join(filter(None, ("1x1 conv", stride)))
        return LayerBox(slot.index, "skip", detail, "white" if removed else PROJECTION_FILL, removed, slot.stride)
    match = MBCONV.fullmatch(op)
    if match is None:  # a chain op this picture does not know: its name, as is
        return LayerBox(slot.index, op, stride, FIXED_FILL, False, slot.stride)
    kernel = int(match["k"])
    detail = " ".join(filter(None, ("SE" if match["se"] else "", "g2" if match["g2"] else "", stride)))
    return LayerBox(slot.index, f"k{kernel} e{match['e']}", detail, KERNEL_FILLS.get(kernel, FIXED_FILL), False,
                    slot.stride)


def layer_boxes(genotype: ChainGenotype) -> list[LayerBox]:
    """Every searchable layer's box, in order."""
    return [layer_box(op, slot) for op, slot in zip(genotype.layers, genotype.slots())]


def _rows(genotype: ChainGenotype) -> list[tuple[str, Sequence[LayerBox | tuple[str, str]]]]:
    """The picture's rows, top to bottom: (row header, boxes), a box being a LayerBox or (label, detail) of a
    fixed part."""
    macro, boxes = genotype.macro, layer_boxes(genotype)
    fixed = [("conv 3x3", f"{macro.stem_width} ch" + (" s2" if macro.stem_stride == 2 else ""))]
    if macro.first_block_width is not None:
        fixed.append(("sep 3x3", f"{macro.first_block_width} ch"))
    rows: list[tuple[str, Sequence[LayerBox | tuple[str, str]]]] = [("input", fixed)]
    slots = genotype.slots()
    for s, stage in enumerate(macro.stages):
        stage_boxes = [box for box, slot in zip(boxes, slots) if slot.stage == s]
        header = f"stage {s}: {macro.scaled(stage.channels)} ch" + (", s2" if stage.stride == 2 else "")
        for start in range(0, len(stage_boxes), MAX_COLUMNS):
            rows.append((header if start == 0 else "", stage_boxes[start:start + MAX_COLUMNS]))
    head = [("pool + FC", f"dropout {macro.dropout:g}")]
    if macro.head_width is not None:
        head.insert(0, ("head 1x1", f"{macro.head_width} ch"))
    rows.append(("output", head))
    return rows


def draw_chain(genotype: ChainGenotype, stem: str | Path, name: str = "genotype") -> list[Path]:
    """Writes ``stem.png`` and ``stem.svg`` of ``genotype``; returns their paths."""
    plt = pyplot()
    from matplotlib.patches import FancyArrowPatch, Patch

    rows = _rows(genotype)
    columns = max(len(boxes) for _, boxes in rows)
    fig, ax = plt.subplots(figsize=(STEP_X * columns + 2.0, STEP_Y * len(rows) * 0.9 + 1.4))
    ax.set_xlim(-1.6, STEP_X * (columns - 1) + BOX_W / 2 + 0.2)
    ax.set_ylim(-STEP_Y * (len(rows) - 1) - 0.55, 0.6)
    for r, (header, boxes) in enumerate(rows):
        y = -STEP_Y * r
        ax.text(-BOX_W / 2 - 0.15, y, header, ha="right", va="center", fontsize=9, weight="bold")
        for c, box in enumerate(boxes):
            x = STEP_X * c
            if c:
                ax.add_patch(FancyArrowPatch((x - STEP_X + BOX_W / 2, y), (x - BOX_W / 2, y), arrowstyle="-|>",
                                             mutation_scale=10, color="#555555", lw=1.0, shrinkA=1, shrinkB=1))
            if isinstance(box, LayerBox):
                _layer_patch(ax, box, x, y)
            else:
                _patch(ax, x, y, FIXED_FILL, "#555555", "solid", 1.0)
                label, detail = box
                _labels(ax, x, y, label, detail, "black")
    legend = [Patch(fc=fill, ec="#555555", label=f"kernel {k}") for k, fill in KERNEL_FILLS.items()]
    legend += [Patch(fc="white", ec="black", lw=2.2, label="stride 2"),
               Patch(fc="white", ec=REMOVED_GREY, ls="--", label="skipped (removed)")]
    if any(box.label == "skip" and not box.removed for box in layer_boxes(genotype)):
        legend.append(Patch(fc=PROJECTION_FILL, ec="#555555", label="skip as 1x1 conv"))
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3 if columns < 4 else 6, fontsize=8,
              frameon=False)
    macro, skipped = genotype.macro, len(genotype.layers) - genotype.depth()
    activation = macro.activation + (f" (fixed parts {macro.outer_activation})" if macro.fixed_activation else "")
    ax.set_title(f"{name}: {genotype.depth()} of {len(genotype.layers)} layers ({skipped} skipped), "
                 f"width {macro.width:g}, {activation}")
    ax.axis("off")
    return save_figure(fig, *png_and_svg(stem))


def _layer_patch(ax, box: LayerBox, x: float, y: float) -> None:
    edge, style, width = (REMOVED_GREY, "--", 1.0) if box.removed else ("black", "solid", 2.2 if box.stride == 2
                                                                        else 1.0)
    _patch(ax, x, y, box.fill, edge, style, width)
    ax.text(x, y + BOX_H / 2 + 0.06, f"L{box.index}", ha="center", va="bottom", fontsize=7, color="#555555")
    _labels(ax, x, y, box.label, box.detail, REMOVED_GREY if box.removed else "black")


def _patch(ax, x: float, y: float, fill: str, edge: str, style: str, width: float) -> None:
    from matplotlib.patches import FancyBboxPatch

    pad = 0.06
    ax.add_patch(FancyBboxPatch((x - BOX_W / 2 + pad, y - BOX_H / 2 + pad), BOX_W - 2 * pad, BOX_H - 2 * pad,
                           boxstyle=f"round,pad={pad}", fc=fill, ec=edge, ls=style, lw=width))


def _labels(ax, x: float, y: float, label: str, detail: str, color: str) -> None:
    ax.text(x, y + (0.09 if detail else 0.0), label, ha="center", va="center", fontsize=9, color=color,
            weight="bold")
    if detail:
        ax.text(x, y - 0.15, detail, ha="center", va="center", fontsize=7, color=color)
