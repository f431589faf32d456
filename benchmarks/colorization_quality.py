"""Does colorization learn? val PSNR/SSIM of a short run vs the gray baseline (ab = 0) on the same val photos.

    python benchmarks/colorization_quality.py --output-dir /tmp/color_bench --epochs 5
    python benchmarks/colorization_quality.py --output-dir runs/color --data-dir ~/photos --image-size 128

With no --data-dir it trains on the built-in synthetic photos (--dataset synthetic).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import train as train_script  # noqa: E402
from pix2pix_tf.data.pairs import make_eval_dataset  # noqa: E402
from pix2pix_tf.data.sources import synthetic_data_dir  # noqa: E402
from pix2pix_tf.evaluate.metrics import image_metrics  # noqa: E402
from pix2pix_tf.precision import resolve_precision  # noqa: E402
from pix2pix_tf.run import restore_generator  # noqa: E402
from pix2pix_tf.tasks import make_task  # noqa: E402


def score(run, files) -> dict:
    """Mean PSNR/SSIM over `files` of the trained colorizer and of the gray baseline, both vs the photo."""
    task = make_task(run.config)
    sums = {"model": [], "gray": []}
    for x, y in make_eval_dataset(files, run.config, batch_size=16, example_fn=task.eval_example):
        real = task.to_rgb(x, y)
        for name, ab in (("model", run.generator(x, training=False)), ("gray", tf.zeros_like(y))):
            sums[name].append({k: v.numpy() for k, v in image_metrics(task.to_rgb(x, ab), real).items()})
    return {
        name: {k: round(float(np.mean(np.concatenate([b[k] for b in batches]))), 3) for k in ("psnr", "ssim")}
        for name, batches in sums.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--image-size", default="64")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further train.py flags")
    args = parser.parse_args(argv)
    data = ["--data-dir", args.data_dir] if args.data_dir else ["--dataset", "synthetic", "--synthetic-pairs", "200"]
    start = time.perf_counter()
    train_script.main([
        "--task", "colorization", *data, "--image-size", args.image_size, "--epochs", str(args.epochs),
        "--batch-size", "8", "--output-dir", args.output_dir, "--log-file", os.path.join(args.output_dir, "log.txt"),
        *args.extra,
    ])
    train_seconds = time.perf_counter() - start
    run = restore_generator(args.output_dir, precision=resolve_precision)  # as the run's validation computed
    data_dir = args.data_dir or synthetic_data_dir(make_task(run.config), args.output_dir)
    files = make_task(run.config).list_files(data_dir, "val")
    result = {"epochs": run.epoch, "val_photos": len(files), "train_py_seconds": round(train_seconds, 1),
              "load_average": [round(v, 2) for v in os.getloadavg()], **score(run, files)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
