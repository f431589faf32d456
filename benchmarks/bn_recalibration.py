"""Is a checkpoint's score noise in its BatchNorm moving statistics? Re-estimate them exactly, then score.

    python benchmarks/bn_recalibration.py --checkpoint outputs/cityscapes-1h-f64/checkpoints/ckpt-3330 \
        --batches 100 --out /tmp/bnrecal --judge ../shared/judges/cityscapes-fcn

The generator of CHECKPOINT (built under the run's precision) runs BATCHES jittered train batches with
`training=True` (dropout on, as in training) while each BatchNorm's momentum is set so that its moving
mean/variance become the plain average over those batches. The result is saved as a one-checkpoint run in
OUT and scored with `evaluate.py --fcn-score JUDGE` on the val split; compare with the checkpoint's own score.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from pix2pix_tf.data.pairs import list_images, make_train_dataset  # noqa: E402
from pix2pix_tf.evaluate.evaluation import EvalConfig, evaluate  # noqa: E402
from pix2pix_tf.precision import resolve_precision  # noqa: E402
from pix2pix_tf.run import CHECKPOINTS_DIR, CONFIG_FILE, restore_generator  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a run, or one checkpoint of it (RUN/checkpoints/ckpt-N)")
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--seed", type=int, default=123, help="seed of the train stream used for the statistics")
    parser.add_argument("--out", required=True)
    parser.add_argument("--judge", default="../shared/judges/cityscapes-fcn")
    args = parser.parse_args(argv)
    run = restore_generator(args.checkpoint, resolve_precision)
    norms = [layer for layer in run.generator.layers if isinstance(layer, keras.layers.BatchNormalization)]
    config = dataclasses.replace(run.config, seed=args.seed, cache="none")
    stream = make_train_dataset(list_images(config.data_dir, "train"), config)
    for k, (x, _) in enumerate(stream.take(args.batches)):
        for layer in norms:
            layer.momentum = k / (k + 1.0)  # moving <- moving * k/(k+1) + batch / (k+1): the running mean
        run.generator(x, training=True)
    os.makedirs(os.path.join(args.out, CHECKPOINTS_DIR), exist_ok=True)
    shutil.copy(os.path.join(run.run_dir, CONFIG_FILE), args.out)
    state = tf.train.Checkpoint(generator=run.generator, epoch=tf.Variable(run.epoch, dtype=tf.int64))
    state.save(os.path.join(args.out, CHECKPOINTS_DIR, "ckpt"))
    results = evaluate(EvalConfig(checkpoint_dir=args.out, split="val", fcn_score=args.judge, report_images=0))
    print(json.dumps({"checkpoint": run.checkpoint, "batches": args.batches, "l1": results["l1"], "fcn": results["fcn_score"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
