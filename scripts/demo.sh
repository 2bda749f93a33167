#!/usr/bin/env bash
# The main job on the embedded default (scikit-learn's digits), run by `make demo`:
# check the stack, then search R-DARTS space S3 with DARTS- and with plain DARTS (beta0 = 0), and derive both.
set -euo pipefail
out="${DMC_DEMO_DIR:-runs/demo-$(date +%Y%m%d-%H%M%S)}"
small=(--dataset digits --epochs 3 --channels 8 --layers 5 --batch-size 64 --seed 0)

dmc doctor
echo "== DARTS- search (auxiliary skip, beta 1 -> 0) =="
dmc search rdarts_s3 "${small[@]}" --out "$out/darts-minus"
echo "== DARTS baseline (beta0 = 0) =="
dmc search rdarts_s3 "${small[@]}" --beta0 0 --out "$out/darts"
for run in darts-minus darts; do
    dmc derive "$out/$run" -o "$out/$run.genotype.json"
done
echo "demo finished: everything is in $out"
