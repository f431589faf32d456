#!/usr/bin/env bash
# A CPU-sized Cityscapes label->photo run scored with L1/PSNR/SSIM and the FCN-score (results in BENCHMARKS.md).
#   bash benchmarks/cityscapes_eval_cpu.sh [DATA_DIR] [OUT_DIR]
# 64x64, ngf=ndf=32, batch 4, 5 epochs of 150 steps (~1 pass over the 2975 train pairs); segmenter 64x64,
# 3 epochs, scored; then continued to 6 epochs and scored again, with the FCN-score controls.
set -euo pipefail
DATA=${1:-../shared/datasets/cityscapes}
OUT=${2:-outputs/bench_eval_cpu}
export TF_CPP_MIN_LOG_LEVEL=2

segmenter_to() {  # train (or continue) the segmenter up to $1 epochs
  /usr/bin/time -f "segmenter train to epoch $1: %e s" nice -n 10 python -m pix2pix_tf.segmenter train \
    --data-dir "$DATA" --image-size 64 --filters 16 --batch-size 16 --epochs "$1" --output-dir "$OUT/segmenter"
  uptime
}
evaluate_run() {
  /usr/bin/time -f "evaluate: %e s" nice -n 10 python evaluate.py --checkpoint-dir "$OUT/run" --data-dir "$DATA" \
    --split val --fcn-score "$OUT/segmenter"
  uptime
}

uptime
/usr/bin/time -f "pix2pix train: %e s" nice -n 10 python train.py --data-dir "$DATA" --image-size 64 \
  --generator-filters 32 --discriminator-filters 32 --batch-size 4 --epochs 5 --steps-per-epoch 150 --val-steps 25 \
  --output-dir "$OUT/run" --log-file "$OUT/train.log"
uptime
segmenter_to 3
evaluate_run
segmenter_to 6
evaluate_run
nice -n 10 python -m benchmarks.fcn_controls --segmenter "$OUT/segmenter" --data-dir "$DATA"
