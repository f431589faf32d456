#!/usr/bin/env bash
# Size, one-image latency and fidelity of every export format (export_report.json), for a generator
# trained STEPS steps at SIZE px on Cityscapes (or the synthetic set when DATA is empty).
#   benchmarks/export_formats.sh 256 1 /tmp/bench256          # the full paper generator, 1 train step
#   DATA= benchmarks/export_formats.sh 32 30 /tmp/bench32     # tiny synthetic run
set -euo pipefail
SIZE=${1:-256}; STEPS=${2:-1}; OUT=${3:-/tmp/pix2pix_bench_$SIZE}
DATA=${DATA-../shared/datasets/cityscapes}
REPO="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "$DATA" ]; then
  source_flags=(--data-dir "$DATA"); calib=(--calibration-dir "$DATA/train" --eval-dir "$DATA/val")
else
  source_flags=(--dataset synthetic --synthetic-pairs 100); calib=()
fi
uptime
python "$REPO/train.py" "${source_flags[@]}" --image-size "$SIZE" --batch-size 1 --epochs 1 \
  --steps-per-epoch "$STEPS" --val-steps 1 --num-samples 0 --output-dir "$OUT/outputs" --log-file "$OUT/train.log"
python "$REPO/export.py" --checkpoint-dir "$OUT/outputs/checkpoints" --export-dir "$OUT/exports" --overwrite --version 1 \
  --eval-count 8 --calibration-count 100 --latency-runs 5 "${calib[@]}"
uptime
