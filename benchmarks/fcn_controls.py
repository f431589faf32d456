"""FCN-score controls: what a segmenter scores on real photos, on uniform gray, and on real photos blurred to 8x8.

    python -m benchmarks.fcn_controls --segmenter outputs/bench_eval_cpu/segmenter --data-dir ../shared/datasets/cityscapes

Gray measures the layout prior alone (the segmenter's answer with no image content); blurred photos keep
only coarse tone. A generator's FCN-score means something only between these and the real photos' score.
"""

from __future__ import annotations

import argparse
import json
import os

import tensorflow as tf

from pix2pix_tf.data.pairs import list_images
from pix2pix_tf.evaluate import segmenter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segmenter", required=True, help="a `python -m pix2pix_tf.segmenter train` output folder or a SavedModel judge")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--split", default="val")
    args = parser.parse_args(argv)
    model = segmenter.load_segmenter(args.segmenter)
    size = model.size
    direction = "AtoB"  # Cityscapes pairs: the photo is the LEFT half (a SavedModel judge records no direction)
    if os.path.isfile(f"{args.segmenter}/config.json"):
        with open(f"{args.segmenter}/config.json") as f:
            direction = json.load(f)["direction"]
    config = segmenter.SegmenterConfig(data_dir=args.data_dir, direction=direction, image_size=size, batch_size=16)
    ds = segmenter.make_dataset(list_images(args.data_dir, args.split), config, training=False)
    controls = {
        "real": ds,
        "gray": ds.map(lambda photos, ids: (tf.zeros_like(photos), ids)),
        "blur8": ds.map(lambda photos, ids: (tf.image.resize(tf.image.resize(photos, (8, 8), antialias=True), size), ids)),
    }
    for name, data in controls.items():
        print(name, json.dumps({k: round(v, 3) for k, v in segmenter.score(model, data).items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
