"""The matplotlib setup every picture shares: a file-only backend, SVG text kept as text, one way to save."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: searchable, and testable
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, *paths: str | Path, dpi: int = 120, tight: bool = True) -> list[Path]:
    """Writes the figure to every path (its suffix names the format; folders are created), closes it and
    returns the paths."""
    plt = pyplot()
    written = []
    for path in map(Path, paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None)
        written.append(path)
    plt.close(fig)
    return written


def png_and_svg(stem: str | Path) -> tuple[Path, Path]:
    """``stem.png`` and ``stem.svg``."""
    return Path(f"{stem}.png"), Path(f"{stem}.svg")
