"""What the protections cost: the start-up data scan per split, and one full-size checkpoint save.

    python benchmarks/resilience_costs.py --data-dir ../shared/datasets/cityscapes
    python benchmarks/resilience_costs.py --data-dir ../shared/datasets/cityscapes --image-size 128
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from pix2pix_tf.config import TrainConfig  # noqa: E402
from pix2pix_tf.data.check import find_bad_images  # noqa: E402
from pix2pix_tf.data.pairs import list_images  # noqa: E402
from pix2pix_tf.train.checkpointing import make_checkpoint  # noqa: E402
from pix2pix_tf.train.loop import build_pix2pix  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--image-size", default="256")
    args = parser.parse_args(argv)
    config = TrainConfig(data_dir=args.data_dir, image_size=args.image_size)
    for split in ("train", "val"):
        files = list_images(args.data_dir, split)
        start = time.perf_counter()
        bad = find_bad_images(files, config.image_size)
        seconds = time.perf_counter() - start
        print(f"scan {split}: {len(files)} files, {len(bad)} bad, {seconds:.2f} s ({len(files) / seconds:.0f} files/s)")
    checkpoint = make_checkpoint(build_pix2pix(config))
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(2):
            start = time.perf_counter()
            path = checkpoint.write(os.path.join(tmp, f"ckpt-{attempt}"))
            seconds = time.perf_counter() - start
            size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp) if f.startswith(os.path.basename(path)))
            print(f"checkpoint save {attempt + 1} at {args.image_size}: {size / 2**20:.0f} MiB in {seconds:.2f} s")


if __name__ == "__main__":
    main()
