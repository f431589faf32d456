"""Trainer parity at an equal budget: the default step vs its variants, judged by the frozen Cityscapes FCN judge.

Each invocation trains ONE variant with one seed (same data, same number of steps), then scores its last
checkpoint with `evaluate.py --fcn-score JUDGE` on the whole val split, and appends one JSON line (L1 curves,
FCN-score, wall time) to RESULTS. `--summarize` prints the per-variant mean and spread over seeds.

    # ~16 min each on 2 quiet cores at 128x128, 6 epochs of batch 16 (1110 steps)
    nice python benchmarks/trainer_parity.py --variant default --seed 1 --data-dir ../shared/datasets/cityscapes \
        --judge ../shared/judges/cityscapes-fcn
    python benchmarks/trainer_parity.py --summarize
    # each seed's mean over its last 3 epochs (the runs keep epochs 4-6):
    python benchmarks/cpu_recipe.py --run outputs/parity/default-s1 --epochs 4,5 --results outputs/parity/last3.jsonl
    python benchmarks/trainer_parity.py --summarize --earlier outputs/parity/last3.jsonl

Variants (everything else is train.py's defaults at the size, epochs and batch below):
  default      auto precision (bf16 on this CPU), FusedAdam
  keras-adam   the same with keras.optimizers.Adam in place of FusedAdam
  fp32         --precision fp32 (FusedAdam)
  reference    the tutorial-style step of benchmarks/train_throughput.py: fp32, keras Adam, BinaryCrossentropy
               objects and batch-mean losses, apply_gradients (run inside fit() so data, logs and checkpoints match)
  nearest      the default, with the jitter resizing the INPUT half (the label map) by nearest neighbour instead
               of bilinear (the photo half stays bilinear)

A variant is swapped in by patching this process only; the library is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from pix2pix_tf.config import TrainConfig  # noqa: E402
from pix2pix_tf.core import model as gan  # noqa: E402
from pix2pix_tf.data import pairs as data  # noqa: E402
from pix2pix_tf.evaluate.evaluation import EvalConfig, evaluate  # noqa: E402
from pix2pix_tf.train import optimizers  # noqa: E402
from pix2pix_tf.train.loop import train  # noqa: E402

VARIANTS = ("default", "keras-adam", "fp32", "reference", "nearest")


def tutorial_train_step(self, batch):
    """The tutorial-style step: batch-mean losses from BinaryCrossentropy objects, apply_gradients."""
    x, y = batch
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
        fake = self.generator(x, training=True)
        real_logits = self.discriminator([x, y], training=True)
        fake_logits = self.discriminator([x, fake], training=True)
        g_gan = bce(tf.ones_like(fake_logits), fake_logits)
        g_l1 = tf.reduce_mean(tf.abs(y - fake))
        g_loss = g_gan + self.lambda_l1 * g_l1
        d_real, d_fake = bce(tf.ones_like(real_logits), real_logits), bce(tf.zeros_like(fake_logits), fake_logits)
        d_loss = 0.5 * (d_real + d_fake)
    g_vars, d_vars = self.generator.trainable_variables, self.discriminator.trainable_variables
    self.g_optimizer.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars))
    self.d_optimizer.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars))
    losses = {"g_total": g_loss, "g_gan": g_gan, "g_l1": g_l1, "d_total": d_loss, "d_real": d_real, "d_fake": d_fake}
    return self._update_trackers(losses)


def nearest_input_jitter(input_image, target_image, image_size, seed):
    """data.random_jitter with the input half resized by nearest neighbour (no blended label colours)."""
    size = data.load_size(image_size)
    x = tf.image.resize(data.to_float(input_image), size, method="nearest")
    y = tf.image.resize(data.to_float(target_image), size)
    in_channels = x.shape[-1] or 3
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    pair = tf.image.stateless_random_crop(tf.concat([x, y], -1), (*image_size, in_channels * 2), seed=crop_seed)
    pair = tf.image.stateless_random_flip_left_right(pair, seed=flip_seed)
    return pair[..., :in_channels], pair[..., in_channels:]


def apply_variant(variant: str) -> dict:
    """Patches this process for `variant`; returns the TrainConfig overrides it needs."""
    if variant in ("keras-adam", "reference"):
        optimizers.FusedAdam = keras.optimizers.Adam  # make_optimizer builds what this name holds
    if variant == "reference":
        gan.Pix2Pix.train_step = tutorial_train_step
    if variant == "nearest":
        data.random_jitter = nearest_input_jitter
    return {"precision": "fp32"} if variant in ("fp32", "reference") else {}


def run(args) -> dict:
    out = os.path.join(args.output_root, f"{args.variant}-s{args.seed}")
    overrides = apply_variant(args.variant)
    config = TrainConfig(
        data_dir=args.data_dir, image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size,
        seed=args.seed, output_dir=out, log_file=os.path.join(out, "train.log"), **overrides,
    )  # fmt: skip
    start = time.time()
    train(config)
    wall = time.time() - start
    results = evaluate(EvalConfig(checkpoint_dir=out, split="val", fcn_score=args.judge, report_images=12))
    with open(os.path.join(out, "history.json")) as f:
        history = json.load(f)
    row = {
        "variant": args.variant, "seed": args.seed, "image_size": args.image_size, "epochs": args.epochs,
        "batch_size": args.batch_size, "train_wall_s": round(wall), "date": time.strftime("%Y-%m-%d"),
        "g_l1": [round(r["g_l1"], 4) for r in history], "val_l1": [round(r["val_l1"], 2) for r in history],
        "eval_l1": results["l1"], "eval_psnr": results["psnr"], "eval_ssim": results["ssim"],
        "fcn": results["fcn_score"],
    }  # fmt: skip
    with open(args.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    return row


def read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def summarize(path: str, earlier: str = "") -> None:
    """Per variant: mean and spread (max - min over seeds) of the FCN per-pixel ratio and the final L1s.

    With `earlier` (benchmarks/cpu_recipe.py lines scoring the same runs' epoch 4 and 5 checkpoints), also
    each seed's ratio averaged over its last 3 epochs, a readout less at the mercy of one checkpoint.
    """
    rows = read_jsonl(path)
    by_epoch = {(os.path.basename(r["run"]), r["epoch"]): r["fcn"]["ratio"]["pixel_acc"]
                for r in (read_jsonl(earlier) if earlier else []) if r.get("test_mode", "eval") == "eval"}  # fmt: skip
    last3_columns = " last-3 mean | last-3 spread |" if earlier else ""
    print(f"| variant | seeds | pixel acc (gen / real) | ratio mean | ratio spread |{last3_columns} class IoU "
          "| final g_l1 | eval L1 (0-255) |")
    print("|---|---|---|---|---|" + "---|---|" * bool(earlier) + "---|---|---|")
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        if not mine:
            continue
        ratios = [r["fcn"]["ratio"]["pixel_acc"] for r in mine]
        seeds = ", ".join(str(r["seed"]) for r in mine)
        generated = " / ".join(f"{r['fcn']['generated']['pixel_acc']:.3f}" for r in mine)
        last3 = ""
        if earlier:
            runs = [(f"{variant}-s{r['seed']}", r["epochs"], ratio) for r, ratio in zip(mine, ratios, strict=True)]
            means = [statistics.mean([by_epoch[(run, epochs - k)] for k in (2, 1)] + [ratio])
                     for run, epochs, ratio in runs if all((run, epochs - k) in by_epoch for k in (2, 1))]  # fmt: skip
            last3 = (f" {statistics.mean(means):.3f} ({len(means)} seeds) | {max(means) - min(means):.3f} |"
                     if means else " — | — |")
        print(f"| {variant} | {seeds} | {generated} (real {mine[0]['fcn']['real']['pixel_acc']:.3f}) "
              f"| {statistics.mean(ratios):.3f} | {max(ratios) - min(ratios):.3f} |{last3}"
              f" {statistics.mean(r['fcn']['generated']['class_iou'] for r in mine):.3f} "
              f"| {statistics.mean(r['g_l1'][-1] for r in mine):.4f} | {statistics.mean(r['eval_l1'] for r in mine):.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=VARIANTS, default="default")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", default="../shared/datasets/cityscapes")
    parser.add_argument("--judge", default="../shared/judges/cityscapes-fcn")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--output-root", default="outputs/parity")
    parser.add_argument("--results", default="outputs/parity/results.jsonl")
    parser.add_argument("--summarize", action="store_true", help="print the table of RESULTS and exit")
    parser.add_argument("--earlier", default="", help="with --summarize: cpu_recipe.py lines scoring the runs' "
                        "epochs 4 and 5, for the mean over the last 3 epochs")  # fmt: skip
    args = parser.parse_args(argv)
    if args.summarize:
        summarize(args.results, args.earlier)
        return 0
    os.makedirs(args.output_root, exist_ok=True)
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
