"""Where a train step's time goes: the TensorFlow profiler's op time by op type, for pix2pix_tf's step.

Builds `Pix2Pix.train_function` as train.py does (`build_pix2pix` from the flags below), runs warm-up
steps on one in-memory batch, traces `--steps` steps with `tf.profiler.experimental`, then reads the
trace (the XSpace protobuf the profiler writes) and sums the TF op events of the host threads by op
type. Op time is summed over threads, so it can exceed wall time on 2 cores. Also prints the step's
wall time (median over the traced steps) and whether grappler's remapper failed on the graph.

    # the one-hour recipe's step, and the 256 px step
    python benchmarks/profile_step.py --image-size 128 --filters 32 --batch-size 16
    python benchmarks/profile_step.py --image-size 256 --batch-size 16
    # the step before the fused layers (Keras' own BatchNormalization and LeakyReLU; the remapper fails on it)
    python benchmarks/profile_step.py --image-size 128 --filters 32 --layers keras
    # the step before the tap-wise conv weight gradients (TensorFlow's Conv2DBackpropFilter at every conv)
    python benchmarks/profile_step.py --image-size 256 --batch-size 1 --steps 10 --layers kernel-grads
    # without grappler's remapper (to see what its rewrites are worth)
    python benchmarks/profile_step.py --image-size 128 --filters 32 --grappler remapping=off
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from pix2pix_tf.config import TrainConfig  # noqa: E402
from pix2pix_tf.core import networks  # noqa: E402
from pix2pix_tf.train.loop import build_pix2pix  # noqa: E402


def op_type(name: str) -> str:
    """'generator/down2_conv/convolution:Conv2D' -> 'Conv2D'; profiler names end in ':TYPE'."""
    return name.rsplit(":", 1)[-1] if ":" in name else name


def op_times(logdir: str) -> collections.Counter:
    """Microseconds per op type, summed over the host threads' TF op events of every .xplane.pb under logdir."""
    totals: collections.Counter = collections.Counter()
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            if plane.name != "/host:CPU":
                continue
            for line in plane.lines:
                for event in line.events:
                    name = plane.event_metadata[event.metadata_id].name
                    # TF op events are 'scope/op:Type'; the executor's own events (e.g. 'ExecutorState::Process')
                    # and Python's function events carry no ':Type' or a '::' and are skipped.
                    if ":" not in name or "::" in name or name.startswith("$") or "__inference" in op_type(name):
                        continue  # the last: the whole tf.function's event, which holds every op's
                    totals[op_type(name)] += event.duration_ps / 1e6
    return totals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--filters", type=int, default=64, help="G and D first-layer filters")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--grappler", nargs="*", default=[], help="grappler options NAME=on|off (tf.config.optimizer)")
    parser.add_argument("--layers", choices=("fused", "keras", "kernel-grads"), default="fused",
                        help="keras: build with networks.reference_layers(); kernel-grads: with networks.kernel_weight_gradients()")
    parser.add_argument("--json", default="", help="write the table here too")
    args = parser.parse_args(argv)
    if args.grappler:
        tf.config.optimizer.set_experimental_options({k: v == "on" for k, v in (o.split("=") for o in args.grappler)})
    size = (args.image_size, args.image_size)
    config = TrainConfig(dataset="synthetic", image_size=size, batch_size=args.batch_size, precision=args.precision,
                         generator_filters=args.filters, discriminator_filters=args.filters)
    layers = {"keras": networks.reference_layers, "kernel-grads": networks.kernel_weight_gradients}.get(args.layers, contextlib.nullcontext)
    with layers():
        model = build_pix2pix(config)
    model.make_train_function()
    x = tf.random.uniform((args.batch_size, *size, 3), -1, 1, seed=1)
    y = tf.random.uniform((args.batch_size, *size, 3), -1, 1, seed=2)
    it = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    for _ in range(args.warmup):
        float(model.train_function(it)["g_total"])
    logdir = tempfile.mkdtemp(prefix="profile_step_")
    walls = []
    tf.profiler.experimental.start(logdir)
    for _ in range(args.steps):
        start = time.perf_counter()
        float(model.train_function(it)["g_total"])
        walls.append(time.perf_counter() - start)
    tf.profiler.experimental.stop()
    totals = op_times(logdir)
    total = sum(totals.values())
    wall = statistics.median(walls)
    print(f"step wall (median of {args.steps}, traced): {wall * 1000:.1f} ms = {args.batch_size / wall:.2f} img/s; "
          f"op time {total / 1000 / args.steps:.1f} ms per step (summed over threads)")
    print("| op type | ms per step | share |\n|---|---|---|")
    rows = []
    for name, us in totals.most_common(args.top):
        rows.append({"op": name, "ms_per_step": round(us / 1000 / args.steps, 2), "share": round(us / total, 4)})
        print(f"| {name} | {rows[-1]['ms_per_step']:.2f} | {100 * us / total:.1f}% |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "wall_ms": wall * 1000, "ops": rows}, f, indent=2)


if __name__ == "__main__":
    main()
