#!/usr/bin/env bash
# The main job on the embedded defaults, run by `make demo`: check the stack; search R-DARTS space S3 on
# scikit-learn's digits with DARTS- and with plain DARTS (beta0 = 0); derive both genotypes; train the
# DARTS- network briefly; export it to ONNX with its parity check; then train a RetinaNet with that
# network as backbone on the embedded COCO-format detection set, report its mAP, and export the whole
# detector to ONNX, checked against mmdet (detections, mAP, latency); then walk
# the same path for the chain space S5 (a DARTS- search of proxyless_s5 at width 0.25, its network trained,
# exported and trained as a RetinaNet backbone); finally write report.md with every stage's numbers and
# pictures (dmc report).
set -euo pipefail
out="${DMC_DEMO_DIR:-runs/demo-$(date +%Y%m%d-%H%M%S)}"

# filtered LOG PATTERN COMMAND...: runs COMMAND with all its output in LOG, showing only the lines that match
# PATTERN as they come. A failing COMMAND fails the demo with its error (the end of LOG), and so does a log
# without a single matching line: a filter must never hide a failed stage.
filtered() {
    local log=$1 pattern=$2
    shift 2
    mkdir -p "$(dirname "$log")"
    set +e
    "$@" 2>&1 | tee "$log" | grep --line-buffered -E "$pattern"
    local status=("${PIPESTATUS[@]}")
    set -e
    if [ "${status[0]}" -ne 0 ]; then
        grep -E "^error:" "$log" >&2 || tail -n 20 "$log" >&2
        echo "demo failed: \`$*\` exited with status ${status[0]} (full output: $log)" >&2
        exit "${status[0]}"
    fi
    if [ "${status[2]}" -ne 0 ]; then
        echo "demo failed: \`$*\` printed no line matching '$pattern' (full output: $log)" >&2
        exit 1
    fi
}

# detector SOURCE CONFIG WORK_DIR EPOCHS: a RetinaNet config for the backbone SOURCE on the detection demo set,
# trained with its log in WORK_DIR-train.log and only its per-epoch mAP lines shown, then the whole detector
# exported as WORK_DIR.onnx (and int8, WORK_DIR.int8.onnx) and checked against mmdet (both pipelines below).
detector() {
    local source=$1 config=$2 work_dir=$3 epochs=$4
    dmc detect config "$source" -o "$config" --data-root "$out/digits-coco" \
        --train-ann annotations/instances_train.json --val-ann annotations/instances_val.json \
        --train-img train/ --val-img val/ --image-scale 128,128 --batch-size 8 --neck-channels 64 --head-convs 2 \
        --warmup-iters 30 --num-workers 0 --no-flip --epochs "$epochs" --work-dir "$work_dir"
    filtered "$work_dir-train.log" "Epoch\(val\).*bbox_mAP:|done:" dmc detect train "$config"
    dmc detect export "$config" "$work_dir/epoch_$epochs.pth" --onnx "$work_dir.onnx" --int8
}

small=(--dataset digits --epochs 3 --channels 8 --layers 5 --batch-size 64 --seed 0)

dmc doctor

# The report's manifest (dmc/demo_manifest.py), written before any stage runs: where each stage below leaves
# its results, relative to $out. Constant text (the quoted 'EOF' expands nothing), so no path can break its
# JSON; `dmc report` reports a stage whose files are not there as missing.
mkdir -p "$out"
cat > "$out/manifest.json" <<'EOF'
{
  "version": 1,
  "searches": [
    {"name": "darts-minus", "title": "DARTS- (auxiliary skip, beta 1 -> 0)", "run": "search-darts-minus"},
    {"name": "darts", "title": "DARTS (beta0 = 0)", "run": "search-darts"}
  ],
  "train_run": "train",
  "onnx_report": "darts-minus.onnx.json",
  "detector_scalars": "detect/*/vis_data/scalars.json",
  "detector_export": "detect.onnx.json",
  "chain": {
    "title": "Chain space S5 (proxyless_s5, width 0.25): search, train, export, detect",
    "searches": [{"name": "chain", "title": "DARTS- in proxyless_s5", "run": "chain/search"}],
    "train_run": "chain/train",
    "onnx_report": "chain/network.onnx.json",
    "detector_scalars": "chain/detect/*/vis_data/scalars.json",
    "detector_export": "chain/detect.onnx.json"
  }
}
EOF
echo "== 1. DARTS- search (auxiliary skip, beta 1 -> 0) =="
dmc search rdarts_s3 "${small[@]}" --out "$out/search-darts-minus"
echo "== 2. DARTS baseline (beta0 = 0) =="
dmc search rdarts_s3 "${small[@]}" --beta0 0 --out "$out/search-darts"
echo "== 3. derive =="
for run in darts-minus darts; do
    dmc derive "$out/search-$run" -o "$out/$run.genotype.json"
done
echo "== 4a. compile the DARTS- genotype into a standalone network =="
dmc compile "$out/darts-minus.genotype.json" --channels 16 --layers 8 --auxiliary -o "$out/darts-minus.pt"
echo "== 4b. train the compiled DARTS- network (16 channels, 8 cells, auxiliary head; 4 epochs) =="
dmc train "$out/darts-minus.pt" --dataset digits --epochs 4 --out "$out/train"
echo "== 5. export to ONNX, checked against onnxruntime =="
dmc export "$out/train/best.pt" --onnx "$out/darts-minus.onnx"
echo "== 6. RetinaNet with the DARTS- backbone on the detection demo set =="
dmc data detection-demo "$out/digits-coco"
detector "$out/train/best.pt" "$out/retinanet_dmc.py" "$out/detect" 20
echo "== 7. the chain space S5: DARTS- search of proxyless_s5 at width 0.25, then the same path =="
chain="$out/chain"
dmc search proxyless_s5 --dataset digits --width 0.25 --image-size 32 --epochs 2 --batch-size 64 --seed 0 \
    --out "$chain/search"
dmc derive "$chain/search" -o "$chain/genotype.json"
dmc compile "$chain/genotype.json" --width 0.25 --num-classes 10 -o "$chain/network.pt"
dmc train "$chain/network.pt" --dataset digits --epochs 4 --out "$chain/train"
dmc export "$chain/train/best.pt" --onnx "$chain/network.onnx"
detector "$chain/train/best.pt" "$chain/retinanet_chain.py" "$chain/detect" 10
echo "== 8. report: every stage's numbers and pictures =="
dmc report "$out"
echo "demo finished: everything is in $out; open $out/report.md"
