"""The demo's report: one Markdown file with every stage's result and pictures (`dmc report`).

It reads the demo folder's manifest (``manifest.json``, see :mod:`dmc.demo_manifest`; ``scripts/demo.sh``
writes it) for where each stage left its results: the search runs, the training run, the ONNX export's
report and the detector's scalar logs. It profiles the trained network, draws the pictures (``viz/``) and
writes ``report.md``. Missing stages are reported as missing, never invented; a stage's file that lacks a
number the report shows raises :class:`InvalidInputError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmc.demo_manifest import DemoManifest, read_manifest
from dmc.errors import InvalidInputError
from dmc.families import AnyGenotype
from dmc.genotype import genotype_from_dict
from dmc.io import atomic_write_text, parse_json, read_json, read_text
from dmc.runfolder import history_path, read_history

_REQUIRED = object()
_KINDS: dict[str, type | tuple[type, ...]] = {"number": (int, float), "object": dict, "string": str}


def _value(record: Any, key: str, source: str, kind: str = "number", default: Any = _REQUIRED) -> Any:
    """``record[key]``, checked to be a ``kind`` (number, object, string); ``default`` when absent or null, if given.

    A record that is not an object, a missing key or a value of another kind raises
    :class:`InvalidInputError` naming ``source`` (the file, and the record in it).
    """
    if not isinstance(record, dict):
        raise InvalidInputError(f"{source}: not a JSON object", "rerun the stage that wrote it (scripts/demo.sh)")
    if record.get(key) is None and default is not _REQUIRED:
        return default
    value = record.get(key)
    if key not in record or isinstance(value, bool) or not isinstance(value, _KINDS[kind]):
        problem = "no" if key not in record else f"a {type(value).__name__} for"
        raise InvalidInputError(f"{source}: {problem} {key!r} (the report needs a {kind})",
                                "rerun the stage that wrote it (scripts/demo.sh), or pass the file that stage wrote")
    return value


def skip_connections(genotype: AnyGenotype, cell_type: str | None = None) -> int:
    """How many edges of ``genotype``'s ``cell_type`` cell (default: the normal cell) are skip connections (chain
    genotypes: how many layers are skipped)."""
    return genotype.skip_count(cell_type or genotype.groups[0])


def _search_section(manifest: DemoManifest, lines: list[str], heading: str) -> dict[str, AnyGenotype]:
    from dmc.compiler.source import resolve_genotype
    from dmc.viz import visualize

    demo = manifest.folder
    genotypes, titles, rows = {}, {}, []
    for entry in manifest.searches:
        name, title, run = entry.name, entry.title, entry.run
        titles[name] = title
        if not (run / "history.jsonl").is_file():
            rows.append(f"| {title} | missing | | | |")
            continue
        history = read_history(run)
        visualize(run, demo / "viz" / name)
        genotype = resolve_genotype(run / "genotype.json")
        genotypes[name] = genotype
        records = [f"{history_path(run)}: epoch {r['epoch']}" for r in history]
        accuracies = [_value(r, "val_acc", where) for r, where in zip(history, records)]
        best = max(range(len(history)), key=accuracies.__getitem__)
        per_epoch = ", ".join(str(skip_connections(genotype_from_dict(r.get("genotype"), where)))
                              for r, where in zip(history, records))
        cost = history[best].get("derived_cost")  # a search for a cost: what the best epoch's network costs
        costed = "" if cost is None else f"; costs {cost:.3g} {history[best].get('cost_unit', '')}".rstrip()
        rows.append(f"| {title} | {len(history)} | {accuracies[best]:.3f} (epoch {history[best]['epoch']}){costed} | "
                    f"{skip_connections(genotype)} | {per_epoch} | {_value(history[-1], 'beta', records[-1]):.2f} |")
    lines += [heading, ""]
    skips = ("skipped layers in the derived chain | ... in the chain derived after each epoch"
             if any(g.groups == ("layers",) for g in genotypes.values()) else
             "skip connections in the derived normal cell | ... in the cell derived after each epoch")
    if not manifest.searches:
        lines += ["Search runs missing.", ""]
    else:
        lines += [f"| search | epochs | best validation accuracy | {skips} | final beta |",
                  "| --- | --- | --- | --- | --- | --- |", *rows, ""]
    for name, genotype in genotypes.items():
        lines += [f"### {titles[name]}", "", f"`{genotype.describe()}`", ""]
        groups = genotype.groups
        what = "chain" if groups == ("layers",) else "cell"
        lines += [f"![{name} {c} {what}](viz/{name}/genotype_{c}.png)" for c in groups] + [""]
        lines += [f"![{name} alphas {c}](viz/{name}/alphas_{c}.png)" for c in groups]
        lines += [f"![{name} beta](viz/{name}/beta.png)", ""]
        if (demo / "viz" / name / "cost.png").is_file():
            lines += [f"![{name} cost](viz/{name}/cost.png)", ""]
    return genotypes


def _train_section(manifest: DemoManifest, lines: list[str], heading: str) -> None:
    from dmc.compiler.source import network_from_source
    from dmc.profile import profile

    lines += [heading, ""]
    run = manifest.train_run
    if run is None or not (run / "result.json").is_file():
        lines += ["Training run missing.", ""]
        return
    result_file = run / "result.json"
    result = read_json(result_file, "training result")
    test_acc, best_acc, best_epoch, epochs = (_value(result, key, str(result_file))
                                              for key in ("test_acc", "best_test_acc", "best_epoch", "epochs"))
    source = network_from_source(run / "best.pt")
    size = (source.data or {}).get("image_size", 32)
    prof = profile(source.network, size, batches=(1, 32), repeats=5)
    lines += ["| test accuracy | best (epoch) | epochs | parameters | MACs per image "
              "| latency b1 / b32 (PyTorch, CPU) |",
              "| --- | --- | --- | --- | --- | --- |",
              f"| {test_acc:.3f} | {best_acc:.3f} ({best_epoch}) | {epochs} | "
              f"{prof.parameters:,} | {prof.macs:,} | {prof.latency_ms[1]:.1f} ms / {prof.latency_ms[32]:.1f} ms |", ""]


def _export_section(manifest: DemoManifest, lines: list[str], heading: str) -> None:
    lines += [heading, ""]
    path = manifest.onnx_report
    if path is None or not path.is_file():
        lines += ["ONNX export missing.", ""]
        return
    report, source = read_json(path, "ONNX export report"), str(path)
    model, opset, tolerance = (_value(report, "model", source, "string"), _value(report, "opset", source),
                               _value(report, "tolerance", source))
    parity = _value(report, "parity", source, "object", None) or {}
    max_error = _value(parity, "max_abs_error", f"{source}: parity", default=float("nan"))
    lines += [f"- `{Path(model).name}` (opset {opset}), onnx.checker: {report.get('onnx_checker')}",
              f"- onnxruntime vs PyTorch on batches {parity.get('batches')}: max abs error "
              f"{max_error:.1e} (tolerance {tolerance:.0e}): {'passed' if report.get('passed') else 'FAILED'}"]
    latency = _value(report, "latency_ms_batch1", source, "object", None)
    if latency:
        where = f"{source}: latency_ms_batch1"
        ort, torch_ms = _value(latency, "onnxruntime", where), _value(latency, "pytorch", where)
        if torch_ms <= 0:
            raise InvalidInputError(f"{where}: 'pytorch' is {torch_ms}, not a positive time",
                                    "rerun `dmc export` to measure it again")
        lines.append(f"- latency at batch 1: onnxruntime {ort:.2f} ms, PyTorch "
                     f"{torch_ms:.2f} ms: ratio **{ort / torch_ms:.2f}x**")
    lines.append("")


def _detection_section(manifest: DemoManifest, lines: list[str], heading: str) -> None:
    lines += [heading, ""]
    evaluations: list[tuple[float, float]] = []  # (mAP@0.5, mAP) of each evaluation, in order
    for log in manifest.detector_scalars or ():
        for number, line in enumerate(read_text(log, "detector log").splitlines(), 1):
            where = f"{log}: line {number}"
            record = parse_json(line, where) if line.strip() else {}
            if isinstance(record, dict) and "coco/bbox_mAP_50" in record:
                evaluations.append((_value(record, "coco/bbox_mAP_50", where), _value(record, "coco/bbox_mAP", where)))
    if not evaluations:
        lines += ["Detector training or its evaluation missing.", ""]
        return
    last_50, last = evaluations[-1]
    lines += [f"After {len(evaluations)} evaluations on the demo set's validation split: bbox mAP@0.5 "
              f"**{last_50:.3f}**, mAP {last:.3f} (best mAP@0.5 {max(e[0] for e in evaluations):.3f}).", ""]


def _detector_export_section(manifest: DemoManifest, lines: list[str], heading: str) -> None:
    lines += [heading, ""]
    path = manifest.detector_export
    if path is None or not path.is_file():
        lines += ["Detector export missing.", ""]
        return
    report, source = read_json(path, "detector export report"), str(path)
    model = _value(report, "model", source, "string")
    parity = _value(report, "parity", source, "object", None)
    if not parity:
        lines += [f"- `{Path(model).name}` exported, not checked (`--no-check`).", ""]
        return
    where = f"{source}: parity"
    maps, timing = _value(report, "map", source, "object"), _value(report, "latency_ms_batch1", source, "object")
    images, detections = _value(parity, "images", where), _value(parity, "detections", where)
    box, score = _value(parity, "max_box_abs_diff", where), _value(parity, "max_score_abs_diff", where)
    mmdet_map = _value(maps, "mmdet", f"{source}: map", default=None)
    ort_map = _value(maps, "onnxruntime", f"{source}: map", default=None)
    ort_ms, torch_ms = (_value(timing, key, f"{source}: latency_ms_batch1") for key in ("onnxruntime_ms", "pytorch_ms"))
    lines += [f"- `{Path(model).name}`: the whole RetinaNet (backbone, FPN, head, box decoding, NMS) as one ONNX "
              f"model: {'passed' if report.get('passed') else 'FAILED'}",
              f"- onnxruntime vs mmdet `predict` on {images} validation images: {detections} detections paired, "
              f"max box difference {box:.1e} px, max score difference {score:.1e}",
              f"- COCO bbox mAP: mmdet **{_map(mmdet_map)}**, onnxruntime **{_map(ort_map)}**",
              f"- latency at batch 1, one thread: onnxruntime {ort_ms:.2f} ms, PyTorch (mmdet `predict`) "
              f"{torch_ms:.2f} ms"]
    int8 = _value(report, "int8", source, "object", None)
    if int8:
        where = f"{source}: int8"
        int8_maps, int8_ms = _value(int8, "map", where, "object"), _value(int8, "latency_ms", where, "object")
        fp32, quantized = (_value(int8_maps, key, f"{where}: map", default=None) for key in ("fp32", "int8"))
        lines.append(f"- int8 (`{Path(_value(int8, 'model', where, 'string')).name}`): mAP {_map(quantized)} against "
                     f"fp32 {_map(fp32)}, {_value(int8_ms, 'speedup', f'{where}: latency_ms'):.2f}x as fast")
    lines.append("")


def _map(value: float | None) -> str:
    return "none (no detections)" if value is None else f"{value:.3f}"


def write_report(demo_dir: str | Path) -> Path:
    """Writes ``demo_dir/report.md`` (and its pictures under ``demo_dir/viz``) from the stages its
    ``manifest.json`` names; returns its path. A missing or malformed manifest raises :class:`InvalidInputError`."""
    demo = Path(demo_dir)
    manifest = read_manifest(demo)
    lines = ["# dmc demo report", "",
             f"Folder: `{demo}`. Every number below was read from the files the stages wrote there.", ""]
    _search_section(manifest, lines, "## 1. Search: DARTS- vs DARTS")
    _train_section(manifest, lines, "## 2. Compile and train the DARTS- genotype")
    _export_section(manifest, lines, "## 3. ONNX export")
    _detection_section(manifest, lines, "## 4. Detection: RetinaNet with the DARTS- backbone")
    _detector_export_section(manifest, lines, "### 4.1 The detector exported: ONNX, checked against mmdet")
    chain = manifest.chain
    if chain is not None:
        lines += [f"## 5. {chain.title or 'Chain space'}", ""]
        _search_section(chain, lines, "### 5.1 Search")
        _train_section(chain, lines, "### 5.2 Compile and train the derived chain")
        _export_section(chain, lines, "### 5.3 ONNX export")
        _detection_section(chain, lines, "### 5.4 Detection: RetinaNet with the chain backbone")
        _detector_export_section(chain, lines, "### 5.5 The detector exported: ONNX, checked against mmdet")
    path = demo / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
