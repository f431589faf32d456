"""`python -m pix2pix_tf.ship`: writes a shipped model (fp16 weights + manifest) from a finished run.

The only writer of pix2pix_tf/pretrained/'s files (that package reads them back).

    python -m pix2pix_tf.ship generator --checkpoint RUN/checkpoints/ckpt-N --name cityscapes \\
        --dataset cityscapes --judge ../shared/judges/cityscapes-fcn --data-dir ../shared/datasets/cityscapes
    python -m pix2pix_tf.ship judge --segmenter outputs/segmenter --name cityscapes

`generator` stores the checkpoint's G in float16 and then scores the *stored* weights, as
`pix2pix-evaluate --pretrained NAME` will, on the whole val split with --judge (and with every judge given),
so the manifest's figures are the shipped file's. `judge` stores a `pix2pix_tf.segmenter train` run and
its score on the real val photos. The manifest records the SHA-256, this command, the training command
(rebuilt from the run's config), its wall time, the commit and the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import shlex
import subprocess
import sys
import time

import numpy as np

from ..config import command_line, parse_image_size
from ..data.sources import DEFAULT_DATA_ROOT, REGISTRY
from ..errors import UsageError
from ..evaluate.segmenter import load_segmenter
from ..files import atomic_path, sha256, user_path, write_json
from ..logs import setup_logging
from ..precision import cpu_flags
from ..pretrained import PREFIX, PRETRAINED_DIR, example_inputs, holds_weights_fp16, load_generator, save_weights_fp16

log = logging.getLogger("pix2pix_tf.ship")


def commit() -> str:
    """The checkout's commit, `+changes` when files differ from it; "unknown" outside a git checkout."""
    root = os.path.dirname(os.path.dirname(PRETRAINED_DIR))

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    """What ran this command (where the run's own wall time came from too, when it trained here): CPU model,
    cores, the CPU flags that decide bf16 speed, GPUs, TensorFlow's version."""
    import tensorflow as tf

    model = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx")))
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {"cpu": model, "cores": os.cpu_count(), "cpu_flags": flags, "gpus": gpus, "tensorflow": tf.__version__}


def store_weights(model, weights: str) -> None:
    """Writes `model`'s fp16 weights to `weights`, unless the file already holds exactly them: re-shipping the
    same checkpoint (to add a judge's scores) then leaves the file, its hash and the repository's history alone."""
    if holds_weights_fp16(weights, model):
        log.info("%s already holds these weights: kept", weights)
        return
    with atomic_path(weights) as tmp:
        save_weights_fp16(model, tmp)


def earlier_scores(manifest: str, weights: str) -> dict:
    """The judges' scores an earlier manifest at `manifest` holds for these very weights (the same SHA-256):
    re-shipping the same checkpoint with another --judge adds that judge's scores to them, rather than re-scoring all."""
    try:
        with open(manifest) as f:
            earlier = json.load(f)
    except (OSError, ValueError):
        return {}
    return dict(earlier.get("scores", {})) if earlier.get("sha256") == sha256(weights) else {}


def _manifest(kind: str, name: str, weights: str, config: dict, extra: dict, args: argparse.Namespace) -> dict:
    return {
        "name": name, "kind": kind, "file": os.path.basename(weights), "sha256": sha256(weights),
        "bytes": os.path.getsize(weights), "dtype": "float16", "config": config, **extra,
        "command": args.command_line, "commit": args.commit, "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }  # fmt: skip


def write_examples(args: argparse.Namespace, config, folder: str) -> list[str]:
    """The input halves (label maps) of the first --examples val pairs, as 256x256 palette-snapped PNGs in `folder`.

    Returns:
        The val files they came from.
    """
    import tensorflow as tf

    from ..data.pairs import list_images, load_pair
    from ..data.palette import label_map_png

    if not args.examples:
        return []
    data_dir = args.data_dir or config.data_dir
    files = list_images(data_dir, "val")[: args.examples]
    if len(files) < args.examples:
        raise UsageError(f"--examples {args.examples}: {data_dir} has only {len(files)} val pairs")
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):
        os.remove(os.path.join(folder, old))
    for index, source in enumerate(files):
        label, _ = load_pair(tf.constant(source), config.direction)
        with atomic_path(os.path.join(folder, f"{index + 1}.png")) as tmp:
            tf.io.write_file(tmp, label_map_png(label, 256))
    return [os.path.basename(source) for source in files]


def ship_generator(args: argparse.Namespace) -> dict:
    from ..evaluate.evaluation import EvalConfig, evaluate
    from ..run import restore_generator, wall_seconds

    run = restore_generator(args.checkpoint)  # float32, as the run saved it
    # The shipped config names where the data comes from for a user (a public dataset), not this machine's folders.
    config = dataclasses.replace(run.config, data_dir="", dataset=args.dataset, output_dir="outputs", keep_checkpoints=1)
    shipped_config = {**config.to_dict(), "data_root": DEFAULT_DATA_ROOT}  # expanded on load, in the user's home
    os.makedirs(args.output_dir, exist_ok=True)
    weights, path = (os.path.join(args.output_dir, f"{args.name}-generator.{ext}") for ext in ("npz", "json"))
    store_weights(run.generator, weights)
    scores = earlier_scores(path, weights)
    examples = write_examples(args, run.config, os.path.join(args.output_dir, f"{args.name}-examples"))
    history = []
    if os.path.isfile(os.path.join(run.run_dir, "history.json")):
        with open(os.path.join(run.run_dir, "history.json")) as f:
            history = json.load(f)
    extra = {
        "parameters": int(sum(np.prod(v.shape) for v in run.generator.weights)),
        "epoch": run.epoch, "source_checkpoint": os.path.basename(run.checkpoint),
        "train_command": command_line("python train.py", run.config),
        "train_wall_seconds": wall_seconds(run.run_dir),
        "train_step_seconds": round(sum(row.get("train_seconds", 0) for row in history if row["epoch"] <= run.epoch), 1),
        "checkpoint_choice": args.choice, "examples": examples,
        "scores": scores,
    }  # fmt: skip
    write_json(path, _manifest("generator", args.name, weights, shipped_config, extra, args))
    # fp16 weights against the float32 checkpoint, both computing in float32: how much storing them moved G's output,
    # on the shipped examples (random inputs for a model shipped without any).
    shipped = load_generator(path)
    if examples:
        inputs = example_inputs(path, config.image_size, len(examples))
    else:
        inputs = np.random.default_rng(0).uniform(-1, 1, (4, *config.image_size, config.resolved_input_channels))
    inputs = inputs.astype(np.float32)
    difference = shipped.generator(inputs, training=False).numpy() - run.generator(inputs, training=False).numpy()
    extra["fp16_max_abs_difference"] = float(np.abs(difference).max())
    extra["fp16_psnr_db"] = float(10 * np.log10(4.0 / max(np.mean(difference**2), 1e-20)))  # outputs span [-1, 1]
    for judge in args.judge:
        start = time.time()
        results = evaluate(EvalConfig(pretrained=path, data_dir=args.data_dir, split="val", fcn_score=judge,
                                      report_dir=os.path.join(args.report_dir, judge.replace("/", "_").strip("._"))))
        extra["scores"][judge] = {
            "command": f"pix2pix-evaluate --pretrained {args.name} --data-dir DIR --fcn-score {judge}",
            "split": "val", "num_images": results["num_images"], "test_mode": results["test_mode"],
            **{k: results[k] for k in ("l1", "psnr", "ssim")}, "fcn_score": results["fcn_score"],
            "seconds": round(time.time() - start),
        }  # fmt: skip
        write_json(path, _manifest("generator", args.name, weights, shipped_config, extra, args))
    return json.load(open(path))


def ship_judge(args: argparse.Namespace) -> dict:
    import keras

    from ..data.pairs import list_images
    from ..evaluate.segmenter import MODEL_FILE, SegmenterConfig, make_dataset, score

    with open(os.path.join(args.segmenter, "config.json")) as f:
        saved = json.load(f)
    model = keras.models.load_model(os.path.join(args.segmenter, MODEL_FILE), compile=False, safe_mode=True)
    os.makedirs(args.output_dir, exist_ok=True)
    weights = os.path.join(args.output_dir, f"{args.name}-judge.npz")
    store_weights(model, weights)
    train_config = SegmenterConfig(**{**saved, "image_size": parse_image_size(saved["image_size"])})
    config = {**saved, "data_dir": "", "output_dir": ""}
    extra: dict = {"parameters": int(sum(np.prod(v.shape) for v in model.weights)),
                   "train_command": command_line("python -m pix2pix_tf.segmenter train", train_config)}
    scores_path = os.path.join(args.segmenter, "scores.json")
    if os.path.isfile(scores_path):
        with open(scores_path) as f:
            extra["train_wall_seconds"] = json.load(f).get("wall_seconds")
    path = os.path.join(args.output_dir, f"{args.name}-judge.json")
    write_json(path, _manifest("judge", args.name, weights, config, extra, args))
    judge = load_segmenter(PREFIX + path)
    data_dir = args.data_dir or saved["data_dir"]
    ds = make_dataset(list_images(data_dir, "val"), dataclasses.replace(train_config, data_dir=data_dir, batch_size=16), training=False)
    extra["scores"] = {"real_val_photos": score(judge, ds), "split": "val", "num_images": len(list_images(data_dir, "val"))}
    write_json(path, _manifest("judge", args.name, weights, config, extra, args))
    return json.load(open(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pix2pix_tf.ship", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generator", help="ship a train.py checkpoint's generator")
    gen.add_argument("--checkpoint", required=True, type=user_path, help="a train.py run, or one checkpoint of it (RUN/checkpoints/ckpt-N)")
    gen.add_argument("--dataset", required=True, choices=("synthetic", *REGISTRY),
                     help="the dataset a user's evaluate/export fetch when given no --data-dir (cityscapes)")
    gen.add_argument("--judge", action="append", default=[], type=user_path, help="score with this segmenter (repeatable; pretrained:NAME works)")
    gen.add_argument("--data-dir", default="", type=user_path, help="the val split to score on (default: the run's data)")
    gen.add_argument("--examples", type=int, default=6, help="val label maps shipped beside it to try it on (default: %(default)s)")
    gen.add_argument("--choice", default="", help="how the checkpoint was chosen, recorded in the manifest")
    gen.add_argument("--report-dir", default="outputs/pretrained-reports", type=user_path, help="where the scoring reports go")
    judge = commands.add_parser("judge", help="ship a `python -m pix2pix_tf.segmenter train` run as an FCN-score judge")
    judge.add_argument("--segmenter", required=True, type=user_path, help="the segmenter run's --output-dir")
    judge.add_argument("--data-dir", default="", type=user_path, help="the val split to score real photos on (default: the run's)")
    for sub in (gen, judge):
        sub.add_argument("--name", required=True, help="the name tools load it by (`--pretrained NAME`, `pretrained:NAME`)")
        sub.add_argument("--output-dir", default=PRETRAINED_DIR, type=user_path,
                         help="where the .npz and .json go (default: the package's pretrained/ folder)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.command_line = f"python -m pix2pix_tf.ship {shlex.join(argv)}"
    # Read before anything is written: the manifest rewrites itself while scoring, and a tracked manifest changed by
    # this very command is not a change to the code the command ran.
    args.commit = commit()
    setup_logging("")
    try:
        manifest = ship_generator(args) if args.command == "generator" else ship_judge(args)
    except UsageError as err:
        parser.error(str(err))
    print(json.dumps({k: manifest[k] for k in ("file", "sha256", "bytes", "scores")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
