"""Output paths are never one of the command's own inputs: `dmc export best.pt --onnx best.pt` is refused
before anything is written, whether the two paths are equal, one is a symlink to the other, or they are
hard links of one file."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from dmc.errors import InvalidInputError


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name one file: the same path once symlinks are resolved, or the same inode."""
    try:
        if Path(a).resolve() == Path(b).resolve():
            return True
    except (OSError, RuntimeError):  # a symlink loop names no file we could overwrite through resolve
        pass
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # either one does not exist (yet)
        return False


def refuse_overwriting_inputs(outputs: Iterable[str | Path], inputs: Iterable[str | Path | None]) -> None:
    """Raises :class:`InvalidInputError` when an output would overwrite an input; ``None`` inputs are skipped."""
    sources = [Path(i) for i in inputs if i is not None]
    for output in outputs:
        for source in sources:
            if same_file(output, source):
                shown = f"{output}" if str(output) == str(source) else f"{output} (the same file as {source})"
                raise InvalidInputError(f"writing {shown} would overwrite an input of this command",
                                        "write the output to another path")
