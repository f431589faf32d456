"""The one-hour CPU recipe, scored along the way: the judge's FCN-score at each kept epoch of one run.

The recipe itself is a plain train.py command (docs/training.md); this script only reads the run it leaves.
Every checkpoint kept (`--keep-checkpoints 70` keeps them all) is scored on the whole val split with
`evaluate.py --fcn-score JUDGE`, so one run gives the budget curve: what 6, 20, 35 or 70 epochs buy.

    nice python train.py --data-dir ../shared/datasets/cityscapes --image-size 128 --generator-filters 32 \
        --discriminator-filters 32 --epochs 70 --epochs-decay 35 --seed 1 --keep-checkpoints 70 \
        --output-dir outputs/cityscapes-1h
    nice python benchmarks/cpu_recipe.py --run outputs/cityscapes-1h --judge ../shared/judges/cityscapes-fcn \
        --epochs 6,10,15,20,35,50,60,68,69,70 --results benchmarks/results/cpu-recipe.jsonl
    nice python benchmarks/cpu_recipe.py --run outputs/cityscapes-1h --judge ../shared/judges/cityscapes-fcn \
        --epochs 70 --test-mode paper --results benchmarks/results/cpu-recipe.jsonl
    python benchmarks/cpu_recipe.py --summarize --results benchmarks/results/cpu-recipe.jsonl

Wall time is read from the run's own log: first epoch's start to the "done" line, validation included.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from pix2pix_tf.evaluate.evaluation import EvalConfig, evaluate  # noqa: E402
from pix2pix_tf.run import CHECKPOINTS_DIR, find_run_dir, kept_checkpoints, wall_seconds  # noqa: E402

# The judge's README: this architecture trained with the seed's recipe on a GPU (50 epochs, batch 16, 256x256),
# and the real val photos, at 256x256 (pixel acc / class acc / class IoU).
GPU_REFERENCE = {"eval": (0.801, 0.452, 0.330), "paper": (0.744, 0.395, 0.276)}
REAL_256 = (0.865, 0.485, 0.386)


def checkpoints_by_epoch(run_dir: str) -> dict[int, str]:
    """{completed epoch: checkpoint prefix} for every epoch-end checkpoint the run kept (not --checkpoint-every's)."""
    kept = {}
    for path in kept_checkpoints(os.path.join(run_dir, CHECKPOINTS_DIR)):
        reader = tf.train.load_checkpoint(path)
        if int(reader.get_tensor("epoch_step/.ATTRIBUTES/VARIABLE_VALUE")) == 0:
            kept[int(reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"))] = path
    return kept


def score(args) -> None:
    run_dir = find_run_dir(args.run)
    kept = checkpoints_by_epoch(run_dir)
    wanted = [int(e) for e in args.epochs.split(",")] if args.epochs else sorted(kept)
    missing = [e for e in wanted if e not in kept]
    if missing:
        raise SystemExit(f"epochs {missing} were not kept in {run_dir}/{CHECKPOINTS_DIR} (kept: {sorted(kept)}); "
                         "train with --keep-checkpoints N to keep more")
    with open(os.path.join(run_dir, "history.json")) as f:
        history = {row["epoch"]: row for row in json.load(f)}
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    for epoch in wanted:
        report = os.path.join(run_dir, f"report-epoch{epoch}-{args.test_mode}")
        start = time.time()
        results = evaluate(EvalConfig(checkpoint_dir=kept[epoch], split="val", fcn_score=args.judge,
                                      report_dir=report, report_images=12, test_mode=args.test_mode))
        row = {
            "run": run_dir, "epoch": epoch, "test_mode": args.test_mode, "date": time.strftime("%Y-%m-%d"),
            "config": {k: config[k] for k in ("image_size", "batch_size", "epochs", "epochs_decay", "seed",
                                              "generator_filters", "discriminator_filters", "generator_depth",
                                              "precision") if k in config},
            "g_l1": round(history[epoch]["g_l1"], 4) if epoch in history else None,
            "lr": history.get(epoch, {}).get("lr"),
            "train_seconds_to_here": round(sum(r.get("train_seconds", 0) for e, r in history.items() if e <= epoch)),
            "run_wall_s": wall_seconds(run_dir), "eval_s": round(time.time() - start),
            "l1": results["l1"], "psnr": results["psnr"], "ssim": results["ssim"], "fcn": results["fcn_score"],
        }  # fmt: skip
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def summarize(path: str) -> None:
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print("| run | epoch | test mode | train min | pixel acc gen / real | ratio | class acc (ratio) | class IoU (ratio) | L1 0-255 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        g, real, ratio = r["fcn"]["generated"], r["fcn"]["real"], r["fcn"]["ratio"]
        print(f"| {os.path.basename(r['run'])} | {r['epoch']} | {r['test_mode']} | {r['train_seconds_to_here'] / 60:.0f} "
              f"| {g['pixel_acc']:.3f} / {real['pixel_acc']:.3f} | **{ratio['pixel_acc']:.3f}** "
              f"| {g['class_acc']:.3f} ({ratio['class_acc']:.3f}) | {g['class_iou']:.3f} ({ratio['class_iou']:.3f}) | {r['l1']:.1f} |")
    for mode, ref in GPU_REFERENCE.items():
        print(f"| GPU reference, 50 epochs at 256 | 50 | {mode} | - | {ref[0]:.3f} / {REAL_256[0]:.3f} "
              f"| {ref[0] / REAL_256[0]:.3f} | {ref[1]:.3f} ({ref[1] / REAL_256[1]:.3f}) | {ref[2]:.3f} ({ref[2] / REAL_256[2]:.3f}) | - |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="the recipe's train.py --output-dir")
    parser.add_argument("--judge", default="../shared/judges/cityscapes-fcn")
    parser.add_argument("--epochs", default="", help="comma-separated epochs to score; default: every kept one")
    parser.add_argument("--test-mode", default="eval", choices=("eval", "paper"))
    parser.add_argument("--results", default="outputs/cpu-recipe.jsonl")
    parser.add_argument("--summarize", action="store_true", help="print the table of RESULTS and exit")
    args = parser.parse_args(argv)
    if args.summarize:
        summarize(args.results)
    elif not args.run:
        parser.error("--run is required unless --summarize")
    else:
        score(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
