"""`dmc data detection-demo`: write the embedded detection set (COCO format)."""

from __future__ import annotations

from pathlib import Path

import typer

from dmc.cli.app import command, sub_app

data_app = sub_app("data", "Write the embedded datasets in their standard on-disk formats.")


@command(data_app, name="detection-demo")
def detection_demo(
    out: Path = typer.Argument(..., help="Folder to create, or an empty one (train/, val/, annotations/)."),
    train_images: int = typer.Option(240, help="Training images (1 to 100000)."),
    val_images: int = typer.Option(60, help="Validation images (1 to 100000)."),
    size: int = typer.Option(128, help="Canvas size in pixels (53 to 4096)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Digits on cluttered canvases, several per image, as a COCO-format detection set."""
    from dmc.api import DemoSpec, write_detection_demo

    paths = write_detection_demo(out, DemoSpec(train_images=train_images, val_images=val_images, size=size,
                                               seed=seed))
    typer.echo(f"wrote {train_images} train and {val_images} val images to {out}")
    for split, path in paths.items():
        typer.echo(f"  {split}: {path}")
