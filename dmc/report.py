"""The demo's report: one Markdown file with every stage's result and pictures (`dmc report`).

It reads what the stages left in the demo folder (written by ``scripts/demo.sh``): the two search runs
(``search-darts-minus``, ``search-darts``), the training run (``train``), the ONNX export's report
(``*.onnx.json``) and the detector's mmengine logs (``detect/*/vis_data/scalars.json``), profiles the
trained network, draws the pictures (``viz/``) and writes ``report.md``. Missing stages are reported as
missing, never invented.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmc.genotype import Genotype
from dmc.io import atomic_write_text, parse_json, read_json
from dmc.runfolder import read_history

SEARCHES = {"darts-minus": "DARTS- (auxiliary skip, beta 1 -> 0)", "darts": "DARTS (beta0 = 0)"}


def skip_connections(genotype: Genotype, cell_type: str = "normal") -> int:
    return sum(op == "skip_connect" for op, _ in genotype.cells[cell_type].edges)


def _search_section(demo: Path, lines: list[str]) -> dict[str, Genotype]:
    from dmc.compiler.source import resolve_genotype
    from dmc.viz import visualize

    genotypes = {}
    rows = []
    for name, title in SEARCHES.items():
        run = demo / f"search-{name}"
        if not (run / "history.jsonl").is_file():
            rows.append(f"| {title} | missing | | | |")
            continue
        history = read_history(run)
        visualize(run, demo / "viz" / name)
        genotype = resolve_genotype(run / "genotype.json")
        genotypes[name] = genotype
        best = max(history, key=lambda r: r["val_acc"])
        per_epoch = ", ".join(str(skip_connections(Genotype.from_dict(r["genotype"]))) for r in history)
        rows.append(f"| {title} | {len(history)} | {best['val_acc']:.3f} (epoch {best['epoch']}) | "
                    f"{skip_connections(genotype)} | {per_epoch} | {history[-1]['beta']:.2f} |")
    lines += ["## 1. Search: DARTS- vs DARTS", "",
              "| search | epochs | best validation accuracy | skip connections in the derived normal cell "
              "| ... in the cell derived after each epoch | final beta |",
              "| --- | --- | --- | --- | --- | --- |", *rows, ""]
    for name, genotype in genotypes.items():
        text = genotype.to_nb201_string() if genotype.kind == "nb201" else genotype.to_darts_text()
        lines += [f"### {SEARCHES[name]}", "", f"`{text}`", ""]
        lines += [f"![{name} {c} cell](viz/{name}/genotype_{c}.png)" for c in genotype.cells] + [""]
        lines += [f"![{name} alphas {c}](viz/{name}/alphas_{c}.png)" for c in genotype.cells]
        lines += [f"![{name} beta](viz/{name}/beta.png)", ""]
    return genotypes


def _train_section(demo: Path, lines: list[str]) -> None:
    from dmc.compiler.source import network_from_source
    from dmc.profile import profile

    result_file = demo / "train" / "result.json"
    lines += ["## 2. Compile and train the DARTS- genotype", ""]
    if not result_file.is_file():
        lines += ["Training run missing.", ""]
        return
    result = read_json(result_file, "training result")
    source = network_from_source(demo / "train" / "best.pt")
    size = (source.data or {}).get("image_size", 32)
    prof = profile(source.network, size, batches=(1, 32), repeats=5)
    lines += ["| test accuracy | best (epoch) | epochs | parameters | MACs per image | latency b1 / b32 (PyTorch, CPU) |",
              "| --- | --- | --- | --- | --- | --- |",
              f"| {result['test_acc']:.3f} | {result['best_test_acc']:.3f} ({result['best_epoch']}) | {result['epochs']} | "
              f"{prof.parameters:,} | {prof.macs:,} | {prof.latency_ms[1]:.1f} ms / {prof.latency_ms[32]:.1f} ms |", ""]


def _export_section(demo: Path, lines: list[str]) -> None:
    reports = sorted(demo.glob("*.onnx.json"))
    lines += ["## 3. ONNX export", ""]
    if not reports:
        lines += ["ONNX export missing.", ""]
        return
    report = read_json(reports[0], "ONNX export report")
    parity = report.get("parity") or {}
    lines += [f"- `{Path(report['model']).name}` (opset {report['opset']}), onnx.checker: {report.get('onnx_checker')}",
              f"- onnxruntime vs PyTorch on batches {parity.get('batches')}: max abs error "
              f"{parity.get('max_abs_error', float('nan')):.1e} (tolerance {report['tolerance']:.0e}): "
              f"{'passed' if report.get('passed') else 'FAILED'}"]
    latency = report.get("latency_ms_batch1")
    if latency:
        lines.append(f"- latency at batch 1: onnxruntime {latency['onnxruntime']:.2f} ms, PyTorch "
                     f"{latency['pytorch']:.2f} ms: ratio **{latency['onnxruntime'] / latency['pytorch']:.2f}x**")
    lines.append("")


def _detection_section(demo: Path, lines: list[str]) -> None:
    lines += ["## 4. Detection: RetinaNet with the DARTS- backbone", ""]
    logs = sorted(demo.glob("detect/*/vis_data/scalars.json"))
    evaluations: list[dict[str, Any]] = []
    for log in logs:
        for line in log.read_text().splitlines():
            record = parse_json(line, str(log)) if line.strip() else {}
            if "coco/bbox_mAP_50" in record:
                evaluations.append(record)
    if not evaluations:
        lines += ["Detector training or its evaluation missing.", ""]
        return
    last = evaluations[-1]
    lines += [f"After {len(evaluations)} evaluations on the demo set's validation split: bbox mAP@0.5 "
              f"**{last['coco/bbox_mAP_50']:.3f}**, mAP {last['coco/bbox_mAP']:.3f} "
              f"(best mAP@0.5 {max(e['coco/bbox_mAP_50'] for e in evaluations):.3f}).", ""]


def write_report(demo_dir: str | Path) -> Path:
    """Writes ``demo_dir/report.md`` (and its pictures under ``demo_dir/viz``); returns its path."""
    demo = Path(demo_dir)
    lines = ["# dmc demo report", "",
             f"Folder: `{demo}`. Every number below was read from the files the stages wrote there.", ""]
    _search_section(demo, lines)
    _train_section(demo, lines)
    _export_section(demo, lines)
    _detection_section(demo, lines)
    path = demo / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
