"""The corpus of bad inputs (issue 12): every kind of file and argument the commands accept, damaged in the ways
users and attackers damage them, through the real CLI. Each must give exactly one line on stderr starting with
`error:`, exit 2 (invalid input) or 1 (environment), never an "unexpected" error, and leave no temporary file.
"""

from __future__ import annotations

import bz2
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmc.compiler import build_network, save_network
from dmc.genotype import published_genotypes


def _mm_stack() -> bool:
    try:
        import mmdet  # noqa: F401
        import mmengine  # noqa: F401
        from mmcv import ops  # noqa: F401
    except Exception:
        return False
    return True


NEEDS_MM = pytest.mark.skipif(not _mm_stack(), reason="mmcv/mmdet not importable here")
TINY_SPEC = (Path(__file__).parents[2] / "spaces" / "tiny.yaml").read_text()
TINY_RUN = ["--epochs", "1", "--batch-size", "4", "--channels", "2", "--layers", "3"]


def _images(root: Path, corrupt: bytes | None = None) -> Path:
    """An image-folder dataset of 10 tiny images per split; ``corrupt`` replaces the first training image."""
    for split in ("train", "test"):
        for c, color in enumerate(["red", "blue"]):
            (root / split / f"c{c}").mkdir(parents=True, exist_ok=True)
            for i in range(5):
                Image.new("RGB", (8, 8), color).save(root / split / f"c{c}" / f"{i}.png")
    if corrupt is not None:
        (root / "train" / "c0" / "0.png").write_bytes(corrupt)
    return root


def _cifar(root: Path, labels: list[int] | None = None, garbage: bool = False) -> Path:
    """A CIFAR-10 folder of 4 images per batch; ``labels`` replace the test batch's."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": np.zeros((4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        if name == "test_batch" and labels is not None:
            batch[b"labels"] = labels
        (folder / name).write_bytes(b"\x00garbage" if garbage and name == "test_batch" else pickle.dumps(batch))
    return root


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Good files to damage: a network file, a search run and a training run (tiny, on 10 training images)."""
    from dmc.search import SearchConfig, search
    from dmc.train import TrainConfig, train

    root = tmp_path_factory.mktemp("made")
    images = _images(root / "images")
    network = build_network(published_genotypes()["DARTS_V2"], channels=2, layers=3)
    save_network(network, root / "net.pt")
    # 10 training images: 5 + 5 for the search's weights and alphas; batches of 6 never leave a lone image
    # (batch norm refuses those) whether training holds out a validation image or not
    result = search(SearchConfig(space="tiny", dataset=f"folder:{images}", epochs=1, batch_size=5, channels=2,
                                 layers=3, kernels="reference", augment=False), root / "search")
    train(result.genotype, TrainConfig.for_dataset(f"folder:{images}", epochs=1, batch_size=6, channels=2, layers=3,
                                                   cutout=0, auxiliary=False), root / "train")
    return root


class Bad:
    """Builds the bad input of one case in ``tmp`` (a fresh folder) from the good files in ``made``."""

    def __init__(self, tmp: Path, made: Path):
        self.tmp, self.made = tmp, made

    def file(self, name: str, content: str | bytes) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(path)

    def dir(self, name: str) -> str:
        (self.tmp / name).mkdir(parents=True, exist_ok=True)
        return str(self.tmp / name)

    def copy(self, name: str) -> Path:
        """A copy of a made file or run folder, to damage."""
        source = self.made / name
        target = self.tmp / name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
        return target

    def truncated(self, name: str) -> str:
        path = self.copy(name)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return str(path)

    def genotype(self, edit: Callable[[dict], None], name: str = "g.json") -> str:
        data = published_genotypes()["DARTS_V2"].to_dict()
        edit(data)
        return self.file(name, json.dumps(data))

    def spec(self, old: str, new: str, name: str = "s.yaml") -> str:
        assert old in TINY_SPEC
        return self.file(name, TINY_SPEC.replace(old, new, 1))

    def run(self, kind: str, damage: Callable[[Path], None]) -> str:
        run = self.copy(kind)
        damage(run)
        return str(run)


def _demo(b: Bad, manifest: dict | str) -> str:
    """A demo folder for `dmc report`: ``b.tmp`` with ``manifest`` (a dict is written as JSON) as manifest.json."""
    b.file("manifest.json", manifest if isinstance(manifest, str) else json.dumps(manifest))
    return str(b.tmp)


def _set(path, value):
    def edit(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


RETINANET_STUB = ("model = dict(type='RetinaNet', backbone=dict(type='DmcBackbone'), data_preprocessor=dict("
                  "type='DetDataPreprocessor'), bbox_head=dict(type='RetinaHead', loss_cls=dict(use_sigmoid=True), "
                  "bbox_coder=dict(type='DeltaXYWHBBoxCoder'), anchor_generator=dict(type='AnchorGenerator')), "
                  "test_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))\n")
"""A config that `dmc detect export` accepts until it reads the checkpoint."""
DARTS_TEXT = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat={concat}, "
              "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])")
DEEP = 100_000


def _detect_export(b: Bad) -> list[str]:
    """`dmc detect export` of a config and checkpoint that the int8 options' refusals come before reading."""
    return ["detect", "export", b.file("c.py", RETINANET_STUB), str(b.copy("net.pt")), "--onnx", str(b.tmp / "d.onnx")]


def _zip_of_text() -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("hello.txt", "not a checkpoint")
    return buffer.getvalue()


def _png() -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="png")
    return buffer.getvalue()


def _train_on(b: Bad, kind: str, root: Path) -> list[str]:
    return ["train", "DARTS_V2", *TINY_RUN, "--dataset", f"{kind}:{root}", "-o", str(b.tmp / "run")]


def _garbage_checkpoints(run: Path) -> None:
    for name in ("last.pt", "best.pt"):
        (run / name).write_bytes(b"garbage")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def case(build: Callable[[Bad], list[str]], fragment: str, code: int = 2, *marks) -> tuple:
    """A bad input: its command line, a fragment of the one error line expected, the exit code."""
    return build, fragment, code, marks


OUT = "-o"
CASES: dict[str, tuple] = {
    # ------------------------------------------------------------------------------- usage errors
    "usage: missing argument": case(lambda b: ["spaces", "show"], "Missing argument"),
    "usage: unknown option": case(lambda b: ["spaces", "show", "tiny", "--bogus"], "No such option: --bogus"),
    "usage: unknown command": case(lambda b: ["nosuch"], "No such command 'nosuch'"),
    "usage: not an integer": case(lambda b: ["compile", "DARTS_V2", "--channels", "abc", OUT, "x.pt"], "'--channels'"),
    # ------------------------------------------------------------------------------- search-space specs
    "spec: not UTF-8": case(lambda b: ["spaces", "validate", b.file("s.yaml", b"\xff\xfe\x00name: x")],
                            "s.yaml: not a text file"),
    "spec: YAML syntax": case(lambda b: ["spaces", "validate", b.file("s.yaml", "cell: [1,\n")], "YAML syntax error"),
    "spec: duplicate key": case(lambda b: ["spaces", "validate", b.spec("  nodes: 2\n", "  nodes: 2\n  nodes: 3\n")],
                                "duplicate key 'nodes'"),
    "spec: deeply nested": case(lambda b: ["spaces", "validate", b.file("s.yaml", "[" * DEEP + "]" * DEEP)],
                                "nested too deeply"),
    "spec: python tag": case(lambda b: ["spaces", "validate", b.file("s.yaml", "!!python/object/apply:os.system "
                                                                              "['touch pwned']\n")], "python/object"),
    "spec: a list": case(lambda b: ["spaces", "validate", b.file("s.yaml", "- a\n- b\n")], "expected a mapping"),
    "spec: empty": case(lambda b: ["spaces", "validate", b.file("s.yaml", "")], "expected a mapping"),
    "spec: channels 1e12": case(lambda b: ["spaces", "show", b.spec("channels: 4", "channels: 1000000000000")],
                                "macro.channels: 1000000000000 is out of range (allowed: 1..1024)"),
    "spec: channels float": case(lambda b: ["spaces", "show", b.spec("channels: 4", "channels: 1.0e12")],
                                 "macro.channels: expected an integer"),
    "spec: layers 1e9": case(lambda b: ["spaces", "show", b.spec("layers: 3", "layers: 1000000000")],
                             "macro.layers: 1000000000 is out of range"),
    "spec: stem multiplier 1e9": case(lambda b: ["spaces", "show", b.spec("stem_multiplier: 3",
                                                                          "stem_multiplier: 1000000000")],
                                      "macro.stem_multiplier: 1000000000 is out of range"),
    "spec: nodes 1000": case(lambda b: ["spaces", "show", b.spec("nodes: 2", "nodes: 1000")],
                             "cell.nodes: 1000 is out of range"),
    "spec: an operation that is a list": case(lambda b: ["spaces", "validate", b.spec("ops: [none, skip_connect",
                                                                                     "ops: [none, [skip_connect]")],
                                              "cell.normal.ops[1]: expected an operation name, got list"),
    "spec: an operation that is a mapping": case(lambda b: ["spaces", "validate", b.spec(
        "ops: [none, skip_connect", "ops: [none, {skip_connect: 1}")], "expected an operation name, got dict"),
    "spec: a YAML alias bomb": case(lambda b: ["spaces", "validate", b.file("s.yaml", "\n".join(
        ["l0: &l0 [a, a]"] + [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 60)]))], "alias bomb"),
    "spec: a folder": case(lambda b: ["spaces", "validate", b.dir("myspace")], "myspace: is a folder"),
    "spec: missing": case(lambda b: ["spaces", "show", str(b.tmp / "missing.yaml")], "no such spec file"),
    "spec: through search": case(lambda b: ["search", b.spec("  nodes: 2\n", "  nodes: 2\n  nodes: 3\n"), *TINY_RUN,
                                            OUT, str(b.tmp / "run")], "duplicate key 'nodes'"),
    "search: channels 1e9": case(lambda b: ["search", "tiny", "--channels", "1000000000", "--epochs", "1",
                                            OUT, str(b.tmp / "run")], "macro.channels: 1000000000 is out of range"),
    "compile: channels 1e12": case(lambda b: ["compile", "DARTS_V2", "--channels", "1000000000000", OUT,
                                              str(b.tmp / "o.pt")], "1..1024"),
    "compile: layers 1e6": case(lambda b: ["compile", "DARTS_V2", "--layers", "1000000", OUT, str(b.tmp / "o.pt")],
                                "1..256"),
    "compile: input size 1e5": case(lambda b: ["compile", "DARTS_V2", "--input-size", "100000", OUT,
                                               str(b.tmp / "o.pt")],
                                    "'--input-size'"),
    "profile: input size 1e5": case(lambda b: ["profile", str(b.copy("net.pt")), "--input-size", "100000"],
                                    "'--input-size'"),
    "export: input size 1e5": case(lambda b: ["export", "DARTS_V2", "--onnx", str(b.tmp / "m.onnx"), "--input-size",
                                               "100000"], "'--input-size'"),
    "profile: no repeats": case(lambda b: ["profile", str(b.copy("net.pt")), "--repeats", "0"], "'--repeats'"),
    "latency table: a cell space": case(lambda b: ["latency", "table", "tiny", "-o", str(b.tmp / "lut.json")],
                                        "latency tables are measured for chain spaces"),
    "latency table: a corrupt table in the way": case(
        lambda b: ["latency", "table", "proxyless_s5", "-o", b.file("lut.json", "{not json")],
        "in the way of the table to write"),
    "profile: a corrupt latency table": case(lambda b: ["profile", "FairNAS_A", "--lut", b.file("t.json", "[]")],
                                             "not a dmc latency table"),
    # ------------------------------------------------------------------------------- genotypes
    "genotype: not UTF-8": case(lambda b: ["compile", b.file("g.json", b"\x80\x81{}"), OUT, str(b.tmp / "o.pt")],
                                "g.json: not a text file"),
    "genotype: float index": case(lambda b: ["compile", b.genotype(_set(["cells", "normal", "nodes", 1, 0, 1], 1.9)),
                                             OUT, str(b.tmp / "o.pt")], "cells.normal.nodes[1]: index 1.9 is not an"),
    "genotype: string index": case(lambda b: ["compile", b.genotype(_set(["cells", "normal", "nodes", 1, 0, 1], "1")),
                                              OUT, str(b.tmp / "o.pt")], "index '1' is not an integer"),
    "genotype: duplicate concat": case(lambda b: ["compile", b.genotype(_set(["cells", "normal", "concat"],
                                                                             [2, 3, 3, 5])), OUT, str(b.tmp / "o.pt")],
                                       "cells.normal.concat: a state is listed twice"),
    "genotype: 1000 nodes": case(lambda b: ["compile", b.genotype(_set(["cells", "normal", "nodes"],
                                                                       [[["skip_connect", 0]]] * 1000)),
                                            OUT, str(b.tmp / "o.pt")], "1000 nodes, more than dmc builds"),
    "genotype: deeply nested JSON": case(lambda b: ["compile", b.file("g.json", '{"cells": ' + "[" * DEEP
                                                                      + "]" * DEEP + "}"), OUT, str(b.tmp / "o.pt")],
                                         "nested too deeply"),
    "genotype: darts text range(0, 3e9)": case(lambda b: ["compile", b.file("g.txt", DARTS_TEXT.format(
        concat="range(0, 3000000000)")), OUT, str(b.tmp / "o.pt")], "range(0, 3000000000): 3000000000 indices"),
    "genotype: darts text range step 0": case(lambda b: ["compile", b.file("g.txt", DARTS_TEXT.format(
        concat="range(2, 3, 0)")), OUT, str(b.tmp / "o.pt")], "range(2, 3, 0): range() arg 3 must not be zero"),
    "genotype: darts text deeply nested": case(lambda b: ["compile", b.file("g.txt", DARTS_TEXT.format(
        concat="[" * 500 + "]" * 500)), OUT, str(b.tmp / "o.pt")], "not a DARTS genotype"),
    "genotype: darts text float index": case(lambda b: ["compile", b.file("g.txt", DARTS_TEXT.format(
        concat="[2]").replace("1)", "1.9)", 1)), OUT, str(b.tmp / "o.pt")], "index 1.9 is not an integer"),
    "genotype: nb201 unicode digit": case(lambda b: ["compile", b.file("g.txt", "|skip_connect~\u00b2|"),
                                                     OUT, str(b.tmp / "o.pt")], "is not 'op~input'"),
    "genotype: a folder": case(lambda b: ["compile", b.dir("mygenotype"), OUT, str(b.tmp / "o.pt")],
                               "mygenotype: is a folder, not a genotype file"),
    "genotype: empty file": case(lambda b: ["compile", b.file("g.json", ""), OUT, str(b.tmp / "o.pt")],
                                 "g.json: not a genotype"),
    "genotype: a network file": case(lambda b: ["compile", str(b.copy("net.pt")), OUT, str(b.tmp / "o.pt")],
                                     "net.pt: a network file, not a genotype"),
    "genotype: a truncated network file": case(lambda b: ["compile", b.truncated("net.pt"), OUT, str(b.tmp / "o.pt")],
                                               "net.pt: a network file, not a genotype"),
    "genotype: an ONNX file": case(lambda b: ["compile", b.file("m.onnx", b"\x08\x07\x12\x03dmc"),
                                              OUT, str(b.tmp / "o.pt")], "m.onnx: an ONNX model, not a genotype"),
    "genotype: an unknown cell type": case(lambda b: ["compile", b.genotype(_set(["cells", "extra"], {
        "nodes": [[["skip_connect", 0]]], "concat": [2]})), OUT, str(b.tmp / "o.pt")],
        "cells.extra: unknown cell type"),
    "genotype: an operation that is a list": case(lambda b: ["compile", b.genotype(_set(
        ["cells", "normal", "nodes", 0, 0, 0], ["sep_conv_3x3"])), OUT, str(b.tmp / "o.pt")], "is not a name"),
    "genotype: a space that is text": case(lambda b: ["compile", b.genotype(_set(["space"], "darts_s0")),
                                                      OUT, str(b.tmp / "o.pt")], "space must be a mapping"),
    "genotype: chain skip where proxyless_s5 changes the shape": case(lambda b: ["compile", b.file("g.json", json.dumps(
        {**published_genotypes()["FairNAS_A"].to_dict(), "layers": ["skip", *published_genotypes()[
            "FairNAS_A"].layers[1:]]})), OUT, str(b.tmp / "o.pt")],
        "'skip' is not a candidate of space 'proxyless_s5'"),
    "genotype: through train": case(lambda b: ["train", b.genotype(_set(["cells", "normal", "concat"], [2, 2])),
                                               "--epochs", "1", OUT, str(b.tmp / "run")], "a state is listed twice"),
    "genotype: through viz": case(lambda b: ["viz", b.file("g.json", b"\xff"), OUT, str(b.tmp / "viz")],
                                  "g.json: not a text file"),
    # ------------------------------------------------------------------------------- network files
    "network: truncated .pt": case(lambda b: ["profile", b.truncated("net.pt")], "net.pt: corrupt or unreadable"),
    "network: random bytes .pt": case(lambda b: ["profile", b.file("n.pt", os.urandom(4096))],
                                      "n.pt: corrupt or unreadable"),
    "network: truncated, no suffix": case(lambda b: ["profile", b.file("n", (b.made / "net.pt").read_bytes()[:3000])],
                                          "n: corrupt or unreadable"),
    "network: zip of text": case(lambda b: ["profile", b.file("n.pt", _zip_of_text())], "n.pt: corrupt or unreadable"),
    "network: pickled code": case(lambda b: ["profile", b.file("n.pt", _torch_bytes(_Exploit()))],
                                  "n.pt: corrupt or unreadable"),
    "network: another dict": case(lambda b: ["profile", b.file("n.pt", _torch_bytes({"format": "x"}))],
                                  "n.pt: not a dmc network file"),
    "network: an ONNX file": case(lambda b: ["profile", b.file("m.onnx", b"\x08\x07\x12\x03dmc")],
                                  "m.onnx: an ONNX model, not a dmc network file"),
    "network: an ONNX file to export": case(lambda b: ["export", b.file("m.onnx", b"\x08\x07"),
                                                       "--onnx", str(b.tmp / "o.onnx")], "m.onnx: an ONNX model"),
    "network: truncated to export": case(lambda b: ["export", b.truncated("net.pt"), "--onnx", str(b.tmp / "o.onnx")],
                                         "net.pt: corrupt or unreadable"),
    # ------------------------------------------------------------------------------- outputs
    "output: an existing folder": case(lambda b: ["compile", "DARTS_V2", "--channels", "2", "--layers", "3",
                                                  OUT, b.dir("out.pt")], "out.pt: is a folder, not a file"),
    "output: under a file": case(lambda b: ["compile", "DARTS_V2", "--channels", "2", "--layers", "3",
                                            OUT, b.file("f", "x") + "/o.pt"], "cannot write", 1),
    "output: derive into a folder": case(lambda b: ["derive", str(b.copy("search")), OUT, b.dir("g.json")],
                                         "g.json: is a folder, not a file"),
    "output: export into a folder": case(lambda b: ["export", str(b.copy("net.pt")), "--onnx", b.dir("o.onnx"),
                                                    "--no-check"], "o.onnx: is a folder"),
    "output: export over its own input": case(lambda b: ["export", str(b.copy("net.pt")), "--onnx",
                                                         str(b.tmp / "net.pt")], "net.pt"),
    # ------------------------------------------------------------------------------- configs
    "config: not UTF-8": case(lambda b: ["search", "--config", b.file("c.yaml", b"\xfe\xff"), OUT, str(b.tmp / "r")],
                              "c.yaml: not a text file"),
    "config: duplicate key": case(lambda b: ["search", "--config", b.file("c.yaml", "space: tiny\nepochs: 1\n"
                                                                                    "epochs: 2\n"),
                                             OUT, str(b.tmp / "r")], "duplicate key 'epochs'"),
    "config: deeply nested": case(lambda b: ["search", "--config", b.file("c.yaml", "space: " + "[" * DEEP
                                                                          + "]" * DEEP), OUT, str(b.tmp / "r")],
                                  "nested too deeply"),
    "config: a list": case(lambda b: ["search", "--config", b.file("c.yaml", "- tiny\n"), OUT, str(b.tmp / "r")],
                           "c.yaml"),
    "config: unknown key": case(lambda b: ["search", "--config", b.file("c.yaml", "space: tiny\nepoch: 1\n"),
                                           OUT, str(b.tmp / "r")], "unknown setting 'epoch'"),
    "config: wrongly typed key": case(lambda b: ["search", "--config", b.file("c.yaml", "space: tiny\nepochs: many\n"),
                                                 OUT, str(b.tmp / "r")], "epochs"),
    "config: missing": case(lambda b: ["search", "--config", str(b.tmp / "none.yaml"), OUT, str(b.tmp / "r")],
                            "none.yaml: cannot read"),
    "search: beta0 nan": case(lambda b: ["search", "tiny", "--beta0", "nan", *TINY_RUN, "--kernels", "reference",
                                         "--dataset", f"folder:{b.made / 'images'}", OUT, str(b.tmp / "r")],
                              "beta0"),
    # ------------------------------------------------------------------------------- datasets
    "dataset: corrupt image": case(lambda b: _train_on(b, "folder", _images(b.tmp / "im", corrupt=b"not a png")),
                                   "0.png: not a readable image"),
    "dataset: truncated image": case(lambda b: _train_on(b, "folder", _images(b.tmp / "im", corrupt=_png()[:40])),
                                     "0.png: not a readable image"),
    "dataset: image folder without test split": case(lambda b: _train_on(b, "folder",
                                                                         Path(b.dir("im/train/c0")).parents[1]),
                                                     "not an image-folder dataset"),
    "dataset: CIFAR label 10": case(lambda b: _train_on(b, "cifar10", _cifar(b.tmp / "c", labels=[0, 1, 10, 2])),
                                    "test_batch: label 10 is out of range"),
    "dataset: CIFAR label -1": case(lambda b: _train_on(b, "cifar10", _cifar(b.tmp / "c", labels=[0, -1, 1, 2])),
                                    "test_batch: label -1 is out of range"),
    "dataset: CIFAR labels nested": case(lambda b: _train_on(b, "cifar10", _cifar(b.tmp / "c", labels=[[0, 1]] * 4)),
                                         "test_batch: 4 images but labels of shape (4, 2)"),
    "dataset: CIFAR batch not a pickle": case(lambda b: _train_on(b, "cifar10", _cifar(b.tmp / "c", garbage=True)),
                                              "test_batch: not a readable CIFAR batch"),
    "dataset: unknown": case(lambda b: ["train", "DARTS_V2", "--dataset", "mnist", OUT, str(b.tmp / "run")],
                             "unknown dataset 'mnist'"),
    # ------------------------------------------------------------------------------- run folders
    "run: resume a folder that is no run": case(lambda b: ["search", "--resume", b.dir("notarun")], "notarun"),
    "run: derive a folder that is no run": case(lambda b: ["derive", b.dir("notarun")], "notarun"),
    "run: derive a budget in a cell space": case(lambda b: ["derive", str(b.copy("search")), "--cost-target", "3"],
                                                 "a cost budget is derived for chain spaces"),
    "run: derive with --cost but no --cost-target": case(lambda b: ["derive", str(b.copy("search")), "--cost",
                                                                    "latency:lut.json"], "add --cost-target"),
    "run: viz a folder that is no run": case(lambda b: ["viz", b.dir("notarun")], "notarun"),
    "run: train resume a folder that is no run": case(lambda b: ["train", "--resume", b.dir("notarun")], "notarun"),
    "run: search config.json corrupt": case(lambda b: ["search", "--resume", b.run("search", lambda r: (
        r / "config.json").write_text("{oops"))], "config.json"),
    "run: search space.yaml not UTF-8": case(lambda b: ["derive", b.run("search", lambda r: (
        r / "space.yaml").write_bytes(b"\xff\xfe"))], "space.yaml"),
    "run: derive from truncated best.pt": case(lambda b: ["derive", b.run("search", lambda r: (
        r / "best.pt").write_bytes((r / "best.pt").read_bytes()[:1000]))], "best.pt: corrupt or unreadable"),
    "run: viz with a garbage history line": case(lambda b: ["viz", b.run("search", lambda r: (
        r / "history.jsonl").write_text("{oops\n" + (r / "history.jsonl").read_text())), OUT, str(b.tmp / "viz")],
        "history.jsonl"),
    "run: train resume from garbage checkpoints": case(lambda b: ["train", "--resume",
                                                                  b.run("train", _garbage_checkpoints)], ".pt"),
    "run: report of a corrupt result.json": case(lambda b: ["report", _demo(b, {"version": 1, "train_run": Path(b.run(
        "train", lambda r: (r / "result.json").write_text("{oops"))).name})], "result.json: invalid JSON at line 1"),
    "run: report of a result.json without test_acc": case(lambda b: ["report", _demo(b, {"version": 1, "train_run": (
        Path(b.run("train", lambda r: (r / "result.json").write_text('{"epochs": 1}'))).name)})],
        "result.json: no 'test_acc'"),
    "run: report of no folder": case(lambda b: ["report", str(b.tmp / "nodemo")], "nodemo: no such folder"),
    "run: report of a folder without manifest": case(lambda b: ["report", b.dir("demo")],
                                                     "manifest.json: no demo manifest"),
    "run: report with a corrupt manifest": case(lambda b: ["report", _demo(b, '{"version": 1,')],
                                                "manifest.json: invalid JSON"),
    "run: report with a mistyped manifest": case(lambda b: ["report", _demo(b, {"version": 1, "searches": "search"})],
                                                 "manifest.json: 'searches' is a string, not a list"),
    "run: report with an unknown manifest key": case(lambda b: ["report", _demo(b, {"version": 1, "training": "t"})],
                                                     "manifest.json: unknown key 'training'"),
    # ------------------------------------------------------------------------------- export checks
    "export: --runs 0": case(lambda b: ["export", str(b.copy("net.pt")), "--onnx", str(b.tmp / "o.onnx"),
                                        "--runs", "0"], "runs"),
    "export: --opset 1": case(lambda b: ["export", str(b.copy("net.pt")), "--onnx", str(b.tmp / "o.onnx"),
                                         "--opset", "1"], "opset"),
    "export: --int8 without --calibration": case(lambda b: ["export", str(b.copy("net.pt")), "--onnx",
                                                            str(b.tmp / "o.onnx"), "--int8"],
                                                 "--int8 needs calibration data"),
    "export: --int8 on data of other classes": case(lambda b: ["export", str(b.copy("net.pt")), "--onnx",
                                                               str(b.tmp / "o.onnx"), "--int8", "--calibration",
                                                               f"folder:{b.made / 'images'}"],
                                                    "has 2 classes, but the network classifies 10"),
    "export: --int8 on images of another size": case(lambda b: ["export", str(b.copy("net.pt")), "--onnx",
                                                                str(b.tmp / "o.onnx"), "--input-size", "40", "--int8",
                                                                "--calibration", f"cifar10:{_cifar(b.tmp / 'c')}"],
                                                     "32x32 images, but the exported model takes 40x40"),
    "export: --int8 on a corrupt calibration image": case(lambda b: [
        "export", str(b.copy("train") / "best.pt"), "--onnx", str(b.tmp / "o.onnx"), "--int8", "--calibration",
        f"folder:{_images(b.tmp / 'images', corrupt=b'garbage')}"], "0.png"),
    # ------------------------------------------------------------------------------- detection
    "data: -5 images": case(lambda b: ["data", "detection-demo", str(b.tmp / "d"), "--train-images", "-5"], "-5"),
    "detect: config from a truncated network": case(lambda b: ["detect", "config", b.truncated("net.pt"),
                                                               OUT, str(b.tmp / "c.py")],
                                                          "net.pt: corrupt", 2, NEEDS_MM),
    "detect: --epochs 0": case(lambda b: ["detect", "config", str(b.copy("net.pt")), OUT, str(b.tmp / "c.py"),
                                          "--epochs", "0"], "epochs", 2, NEEDS_MM),
    "detect: train a config with a syntax error": case(lambda b: ["detect", "train", b.file("c.py", "model = dict(\n")],
                                                       "c.py", 2, NEEDS_MM),
    "detect: train a YAML config with a python tag": case(lambda b: ["detect", "train", b.file(
        "c.yaml", "model: !!python/object/apply:os.system ['touch pwned']\n")], "c.yaml", 2, NEEDS_MM),
    "detect: train a YAML alias bomb": case(lambda b: ["detect", "train", b.file("c.yaml", "\n".join(
        ["l0: &l0 [{a: 1}]"] + [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 60)]))], "alias bomb", 2,
        NEEDS_MM),
    "detect: test a search checkpoint": case(lambda b: ["detect", "test", b.file("c.py", "x = 1\n"),
                                                        str(b.copy("search") / "last.pt")], "last.pt", 2, NEEDS_MM),
    "detect: test a folder": case(lambda b: ["detect", "test", b.file("c.py", "x = 1\n"), b.dir("work")],
                                  "work: is a folder, not a checkpoint", 2, NEEDS_MM),
    "detect: config on a data root that is not there": case(lambda b: ["detect", "config", str(b.copy("net.pt")), OUT,
                                                                       str(b.tmp / "c.py"), "--data-root", "nowhere"],
                                                            "data root nowhere: no such folder", 2, NEEDS_MM),
    "detect: export a config that is no RetinaNet": case(lambda b: ["detect", "export", b.file(
        "c.py", "model = dict(type='FasterRCNN')\n"), str(b.copy("net.pt")), "--onnx", str(b.tmp / "d.onnx")],
        "the detector is FasterRCNN", 2, NEEDS_MM),
    "detect: export a truncated checkpoint": case(lambda b: ["detect", "export", b.file("c.py", RETINANET_STUB),
                                                             b.truncated("net.pt"), "--onnx", str(b.tmp / "d.onnx")],
                                                  "net.pt: corrupt or unreadable checkpoint", 2, NEEDS_MM),
    "detect: export --int8 with --no-check": case(lambda b: [*_detect_export(b), "--int8", "--no-check"],
                                                  "the int8 model against the fp32 one on the test images, which "
                                                  "--no-check skips", 2, NEEDS_MM),
    "detect: export --int8-out without --int8": case(lambda b: [*_detect_export(b), "--int8-out",
                                                                str(b.tmp / "q.onnx")],
                                                     "--int8-out applies to the int8 model", 2, NEEDS_MM),
    "detect: export --calibration-images without --int8": case(lambda b: [*_detect_export(b), "--calibration-images",
                                                                          "5"],
                                                               "--calibration-images applies to the int8 model", 2,
                                                               NEEDS_MM),
    "detect: export --calibration-images 0": case(lambda b: [*_detect_export(b), "--int8", "--calibration-images",
                                                             "0"], "'--calibration-images'", 2, NEEDS_MM),
    "detect: export --int8-out over the fp32 model": case(lambda b: [*_detect_export(b), "--int8", "--int8-out",
                                                                     str(b.tmp / "d.onnx")],
                                                          "d.onnx, written by the same export", 2, NEEDS_MM),
    "detect: export --int8-out over the report": case(lambda b: [*_detect_export(b), "--int8", "--int8-out",
                                                                 str(b.tmp / "d.onnx.json")],
                                                      "d.onnx.json, written by the same export", 2, NEEDS_MM),
    # ------------------------------------------------------------------------------- ablation, benchmarks
    "ablate: seeds not integers": case(lambda b: ["ablate", "tiny", OUT, str(b.tmp / "grid"), "--seeds", "a"],
                                       "--seeds 'a' is not a comma-separated list of integers"),
    "bench: nb201 archive missing": case(lambda b: ["bench", "nb201", "0", "--data", str(b.tmp / "nowhere")],
                                         "nowhere: no such folder"),
    "bench: nb201 archive that runs code": case(lambda b: ["bench", "nb201", "0", "--data", str(Path(b.file(
        "nats/meta.pickle.pbz2", bz2.compress(pickle.dumps(_Exploit())))).parent)], "refused"),
}


def _torch_bytes(obj) -> bytes:
    buffer = BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("name", [pytest.param(name, marks=CASES[name][3]) for name in CASES])
def test_bad_input_gets_one_error_line(cli, made, tmp_path, monkeypatch, name):
    monkeypatch.delenv("DMC_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    build, fragment, code, _ = CASES[name]
    args = build(Bad(tmp_path, made))
    result = cli(*args)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{args}: exit {result.exit_code}\n{result.stderr}"
    assert "unexpected" not in result.stderr and "Traceback" not in result.output
    assert fragment in lines[0] and result.exit_code == code, f"exit {result.exit_code}: {lines[0]}"
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"
    assert not (tmp_path / "pwned").exists()


def _command_of(args: list[str], group) -> str | None:
    """The command ``args`` run (``"detect train"``), or None for a command line that names no command."""
    words = []
    for arg in args:
        if not hasattr(group, "commands") or arg not in group.commands:
            break
        group = group.commands[arg]
        words.append(arg)
    return None if hasattr(group, "commands") else " ".join(words)


def _leaves(group, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _leaves(command, (*prefix, name))
        else:
            yield " ".join((*prefix, name))


def test_the_corpus_covers_every_command(made, tmp_path):
    """New commands need their bad inputs here too: each case's command line is built (not run) and its command
    is the words that lead to one (a case of `train` does not cover `detect train`)."""
    from typer.main import get_command

    from dmc.cli.main import app

    group = get_command(app)
    covered = set()
    for i, (build, *_) in enumerate(CASES.values()):
        (tmp_path / str(i)).mkdir()
        covered.add(_command_of(build(Bad(tmp_path / str(i), made)), group))
    assert _command_of(["detect", "train", "x.py"], group) == "detect train"
    assert _command_of(["train", "DARTS_V2"], group) == "train" and _command_of(["detect"], group) is None
    missing = set(_leaves(group)) - covered - {"doctor", "spaces list"}
    assert not missing


def test_a_full_disk_on_output_is_one_line_and_leaves_no_temporary_file(tmp_path):
    """A real write failure (a file-size limit makes writes fail as a full disk does), in a child process."""
    script = ("import resource, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
              "from dmc.cli.main import main\n"
              "sys.argv = ['dmc', 'compile', 'DARTS_V2', '--channels', '2', '--layers', '3', '-o', 'out/n.pt']\n"
              "main()\n")
    env = {k: v for k, v in os.environ.items() if k != "DMC_DEBUG"}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: cannot write out/n.pt: File too large")
    assert list((tmp_path / "out").iterdir()) == []


def _as_a_user() -> list[str]:
    """A command prefix under which folder permissions apply: none for a user; for root, setpriv without the
    capabilities that let root write and search anywhere (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    if not shutil.which("setpriv") or subprocess.run([*prefix, "true"]).returncode != 0:
        pytest.skip("root without setpriv (util-linux) writes into read-only folders")
    return prefix


def test_a_read_only_output_folder_is_one_line(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    env = {k: v for k, v in os.environ.items() if k != "DMC_DEBUG"}
    try:
        result = subprocess.run([*_as_a_user(), sys.executable, "-m", "dmc", "compile", "DARTS_V2", "--channels", "2",
                                 "--layers", "3", "-o", str(folder / "n.pt")], env=env, capture_output=True,
                                text=True, timeout=300)
    finally:
        folder.chmod(0o755)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: cannot write {folder / 'n.pt'}: Permission"), result.stderr
    assert list(folder.iterdir()) == []
