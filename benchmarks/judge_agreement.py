"""Do two judges order images alike? real photos > the pretrained generator > class-mean colours > the mean image.

    python benchmarks/judge_agreement.py --data-dir ../shared/datasets/cityscapes \
        --judge ../shared/judges/cityscapes-fcn --judge pretrained:cityscapes \
        --results benchmarks/results/judge-agreement.jsonl
    python benchmarks/judge_agreement.py --summarize --results benchmarks/results/judge-agreement.jsonl

On the val split (all 400 pairs), each judge segments four sets of images and is scored against the label
maps (the paper's per-pixel accuracy, per-class accuracy and class IoU):
  - real:        the val photos;
  - pretrained:  the shipped generator's photos (`pix2pix-evaluate --pretrained NAME --fcn-score JUDGE`, read
                 from the generator's manifest when `ship generator --judge JUDGE` put it there, else run here;
                 its "real" row takes the generator's 256 -> 128 -> 256 path, so its ratio compares like with like);
  - class-mean:  each label pixel painted its class's mean colour over the train photos (void: the void mean);
  - mean image:  the per-pixel mean of the train photos, the same image for every label map.
The last two are non-learned controls: a judge that rewards photo-like texture, not just layout, must
score them below the generator, and the constant image far below.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pix2pix_tf.data.pairs import AUTOTUNE, list_images, load_pair, to_float  # noqa: E402
from pix2pix_tf.data.palette import IGNORE, NUM_CLASSES, colours_to_ids  # noqa: E402
from pix2pix_tf.evaluate.evaluation import EvalConfig, evaluate  # noqa: E402
from pix2pix_tf.evaluate.metrics import confusion_matrix, segmentation_scores  # noqa: E402
from pix2pix_tf.evaluate.segmenter import load_segmenter, predict_ids  # noqa: E402
from pix2pix_tf.pretrained import read_manifest  # noqa: E402

SIZE = (256, 256)  # the stored size of the Cityscapes halves: controls are painted at it
SETS = ("real", "pretrained", "class-mean", "mean image")


def pairs(files: list[str], batch_size: int = 16) -> tf.data.Dataset:
    """(photo float [-1, 1], label ids int32, void-or-class index for painting) batches at SIZE; LEFT = photo."""

    def load(path):
        photo, label = load_pair(path, "AtoB")
        photo = tf.image.resize(to_float(photo), SIZE)
        ids = colours_to_ids(tf.image.resize(label, SIZE, method="nearest"))
        return photo, ids

    return tf.data.Dataset.from_tensor_slices(files).map(load, num_parallel_calls=AUTOTUNE).batch(batch_size).prefetch(AUTOTUNE)


def train_statistics(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(class-mean colours [NUM_CLASSES + 1, 3] with void last, the mean photo [H, W, 3]), in [-1, 1], over `files`."""
    sums, counts = np.zeros((NUM_CLASSES + 1, 3)), np.zeros(NUM_CLASSES + 1)
    mean_image, n = np.zeros((*SIZE, 3)), 0
    for photos, ids in pairs(files):
        photos, ids = photos.numpy().astype(np.float64), ids.numpy()
        slot = np.where(ids == IGNORE, NUM_CLASSES, ids)
        for c in range(NUM_CLASSES + 1):
            mask = slot == c
            sums[c] += photos[mask].sum(axis=0)
            counts[c] += mask.sum()
        mean_image += photos.sum(axis=0)
        n += len(photos)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32), (mean_image / n).astype(np.float32)


def score_controls(judge, files: list[str], colours: np.ndarray, mean_image: np.ndarray) -> dict[str, dict]:
    confusion = {name: np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64) for name in ("real", "class-mean", "mean image")}
    for photos, ids in pairs(files):
        painted = tf.gather(colours, tf.where(ids == IGNORE, NUM_CLASSES, ids))
        constant = tf.broadcast_to(mean_image, photos.shape)
        for name, images in (("real", photos), ("class-mean", painted), ("mean image", constant)):
            judge_ids = tf.image.resize(ids[..., None], judge.size, method="nearest")[..., 0]
            confusion[name] += confusion_matrix(judge_ids, predict_ids(judge, images), NUM_CLASSES).numpy()
    return {name: segmentation_scores(matrix) for name, matrix in confusion.items()}


def shipped_scores(name: str, judge: str, num_images: int) -> dict | None:
    """The FCN-score the generator's manifest holds under `judge` over all `num_images` val pairs (written by
    `ship generator --judge JUDGE` through pix2pix-evaluate, from the stored weights), or None: evaluate it here."""
    manifest, _ = read_manifest(name, "generator")
    entry = manifest["scores"].get(judge)
    return entry["fcn_score"] if entry and entry["num_images"] == num_images else None


def run(args) -> None:
    val, train = list_images(args.data_dir, "val"), list_images(args.data_dir, "train")
    start = time.time()
    colours, mean_image = train_statistics(train)
    print(f"train statistics over {len(train)} photos: {time.time() - start:.0f} s", flush=True)
    for judge_path in args.judge:
        start = time.time()
        judge = load_segmenter(judge_path)
        scores = score_controls(judge, val, colours, mean_image)
        fcn, source = shipped_scores(args.pretrained, judge_path, len(val)), "the generator's manifest"
        if fcn is None:
            config = EvalConfig(pretrained=args.pretrained, data_dir=args.data_dir, fcn_score=judge_path,
                                report_dir=os.path.join(args.report_dir, judge_path.replace("/", "_").strip("._")))
            fcn, source = evaluate(config)["fcn_score"], "pix2pix-evaluate, this run"
        row = {
            "judge": judge_path, "pretrained": args.pretrained, "data_dir": args.data_dir, "num_images": len(val),
            "date": time.strftime("%Y-%m-%d"), "seconds": round(time.time() - start),
            "scores": {"real": scores["real"], "pretrained": fcn["generated"], "class-mean": scores["class-mean"],
                       "mean image": scores["mean image"]},
            "pretrained_real_same_path": fcn["real"], "pretrained_ratio": fcn["ratio"], "pretrained_source": source,
        }  # fmt: skip
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def summarize(path: str) -> None:
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print("| judge | images | per-pixel acc | ÷ real | per-class acc | ÷ real | class IoU | ÷ real | order holds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        real = row["scores"]["real"]
        for name in SETS:
            s = row["scores"][name]
            cells = " | ".join(f"{s[k]:.3f} | {s[k] / real[k]:.3f}" for k in ("pixel_acc", "class_acc", "class_iou"))
            order = ""
            if name == "real":
                values = [[row["scores"][n][k] for n in SETS] for k in ("pixel_acc", "class_acc", "class_iou")]
                order = " / ".join("yes" if all(a > b for a, b in zip(v, v[1:])) else "no" for v in values)
            print(f"| {row['judge']} | {name} | {cells} | {order} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/datasets/cityscapes")
    parser.add_argument("--judge", action="append", default=[], help="a segmenter, SavedModel judge or pretrained:NAME (repeatable)")
    parser.add_argument("--pretrained", default="cityscapes", help="the shipped generator to score")
    parser.add_argument("--report-dir", default="outputs/judge-agreement")
    parser.add_argument("--results", default="outputs/judge-agreement.jsonl")
    parser.add_argument("--summarize", action="store_true", help="print the table of RESULTS and exit")
    args = parser.parse_args(argv)
    if args.summarize:
        summarize(args.results)
    elif not args.judge:
        parser.error("--judge is required unless --summarize")
    else:
        run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
