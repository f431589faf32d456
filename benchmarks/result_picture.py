"""The front-page picture: label map | generated | real photo for the first val pairs, from a trained run.

    python benchmarks/result_picture.py --run outputs/parity/default-s1 --data-dir ../shared/datasets/cityscapes \
        --rows 6 --out docs/results.png --title "6 epochs at 128x128 on 2 CPU cores"

The generator runs as evaluate.py runs it (`--test-mode eval`, the run's precision) on the pairs resized to
the run's size; the rows are the first `--rows` files of the split, so a picture is reproducible.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pix2pix_tf.data.pairs import list_images, make_eval_dataset, to_uint8  # noqa: E402
from pix2pix_tf.precision import resolve_precision  # noqa: E402
from pix2pix_tf.run import restore_generator  # noqa: E402
from pix2pix_tf.train.plots import save_sample_grid  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a train.py --output-dir (or its checkpoints/)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--out", default="docs/results.png")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    run = restore_generator(args.run, resolve_precision)
    files = list_images(args.data_dir, args.split)[: args.rows]
    x, y = next(iter(make_eval_dataset(files, run.config, batch_size=args.rows)))
    fake = run.generator(x, training=False)
    save_sample_grid(to_uint8(x).numpy(), to_uint8(fake).numpy(), to_uint8(y).numpy(), args.out, args.title)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
