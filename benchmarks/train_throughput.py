"""Train-step img/s: a tutorial-style reference step vs pix2pix_tf's fast step, in one run; and the input pipeline.

The reference is the same architecture written the plain way: fp32, one `tf.function` over two
GradientTapes, `BinaryCrossentropy` objects, `apply_gradients`. Ours is `Pix2Pix.train_function`
(what fit() calls) as `build_pix2pix` compiles it from the flags below. Both are fed one in-memory
batch, so the numbers are the step alone; `--data-dir` times the input pipeline alone. Ours reads
that batch through a tf.data iterator as fit() does (on a GPU a host-to-device copy per step) while
the reference gets the tensors directly, so the ratio is, if anything, conservative. The GPU peak is
per process: it includes the weights of the variants built before (~0.7 GiB each at 256²). Warm-up
calls (tracing, compiling) are excluded, variants are interleaved inside every repeat, and the
median img/s over repeats is reported with ours/reference ratios.

    # this 2-core CPU (auto = bf16, no XLA); --variants adds rows for other settings of ours
    nice python benchmarks/train_throughput.py --batch-sizes 1 16 --data-dir ../shared/datasets/cityscapes
    nice python benchmarks/train_throughput.py --batch-sizes 1 --variants auto fp32 bf16:on
    # one GPU (auto = bf16 + XLA on Ampere/Hopper); peak GPU memory per row
    python benchmarks/train_throughput.py --batch-sizes 1 16 64 --variants auto auto:auto:4 bf16:off --data-dir DIR

A variant is PRECISION[:JIT[:STEPS_PER_EXECUTION]] with the train.py values (auto|fp32|bf16|fp16,
auto|on|off, int); `today:`VARIANT is that step built with Keras' own BatchNormalization, LeakyReLU and
convs (pix2pix_tf's step before the layers of core/layers.py), `kernel-grads:`VARIANT the step with the fused
layers but TensorFlow's own conv weight gradients (before TapGradConv2D; the default where
`precision.weight_gradients_by_taps` says no), and `reference-bf16` is the tutorial-style
step under the `mixed_bfloat16` policy (the one line a tutorial user would add). Rows: batch size,
variant, median img/s, ratio to the reference at that batch size, and the convolutions' GFLOP/s
(multiply-adds x 2 of every conv of G and D, forward and backward: the step's arithmetic, for a
fraction of the CPU's peak).

    # issue 22's three ratios: the recipe setting (128 px, 32 filters) and 256 px, in one run each
    python benchmarks/train_throughput.py --image-size 128 --filters 32 --batch-sizes 16 --variants today:auto kernel-grads:auto auto
    python benchmarks/train_throughput.py --batch-sizes 1 16 --variants reference-bf16 today:auto kernel-grads:auto auto
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from pix2pix_tf.config import TrainConfig, auto_generator_depth  # noqa: E402
from pix2pix_tf.core import networks  # noqa: E402
from pix2pix_tf.core.networks import build_discriminator, build_generator  # noqa: E402
from pix2pix_tf.data.pairs import list_images, make_train_dataset  # noqa: E402
from pix2pix_tf.precision import cpu_flags, dtype_policy, gpu_compute_capability, resolve_precision  # noqa: E402
from pix2pix_tf.train.loop import build_pix2pix  # noqa: E402
from pix2pix_tf.train.runtime import resolve_jit_compile  # noqa: E402


def reference_step(image_size: tuple[int, int], filters: int = 64, precision: str = "fp32", lambda_l1: float = 100.0):
    """The tutorial-style step: Keras' own layers, plain tf.function, losses and updates written out inline."""
    with dtype_policy(precision), networks.reference_layers():
        generator = build_generator(image_size, filters=filters, depth=auto_generator_depth(image_size))
        discriminator = build_discriminator(image_size, filters=filters)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = generator(x, training=True)
            real_logits = discriminator([x, y], training=True)
            fake_logits = discriminator([x, fake], training=True)
            fake = tf.cast(fake, tf.float32)
            g_loss = bce(tf.ones_like(fake_logits), fake_logits) + lambda_l1 * tf.reduce_mean(tf.abs(y - fake))
            d_loss = 0.5 * (bce(tf.ones_like(real_logits), real_logits) + bce(tf.zeros_like(fake_logits), fake_logits))
        g_vars, d_vars = generator.trainable_variables, discriminator.trainable_variables
        g_opt.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars))
        d_opt.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars))
        return g_loss

    return lambda x, y, it: float(step(x, y)), 1


def our_step(variant: str, image_size: tuple[int, int], filters: int = 64):
    """Pix2Pix.train_function as build_pix2pix compiles it for `variant` ([today:]PRECISION[:JIT[:SPE]])."""
    if variant == "reference-bf16":
        return reference_step(image_size, filters, "bf16")
    prefix, _, rest = variant.partition(":") if variant.startswith(("today:", "kernel-grads:")) else ("", "", variant)
    parts = rest.split(":")
    precision, jit, spe = (parts + ["auto", "auto", "1"][len(parts) :])[:3]
    config = TrainConfig(dataset="synthetic", image_size=image_size, precision=precision, jit_compile=jit,
                         steps_per_execution=int(spe), generator_filters=filters, discriminator_filters=filters)
    layers = {"today": networks.reference_layers, "kernel-grads": networks.kernel_weight_gradients}.get(prefix, contextlib.nullcontext)
    with layers():
        model = build_pix2pix(config)
    model.make_train_function()
    return lambda x, y, it: float(model.train_function(it)["g_total"]), int(spe)


def step_flops_per_image(image_size: tuple[int, int], filters: int) -> float:
    """FLOPs of one image's train step in G's and D's convolutions (2 x multiply-adds).

    G runs forward, then backward for its input and weight gradients (3x its forward); D runs forward
    twice (real and generated pairs), weight gradients twice and input gradients three times (D's two
    passes for its own loss, and the generated pass once more for G's): 7x its forward.
    """
    def forward(model):
        total = 0
        for layer in model.layers:
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
                # A transposed conv does a conv's work per *input* position, a conv per output position.
                positions = layer.input.shape[1:3] if isinstance(layer, keras.layers.Conv2DTranspose) else layer.output.shape[1:3]
                total += 2 * positions[0] * positions[1] * int(np.prod(layer.kernel.shape))
        return total

    generator = build_generator(image_size, filters=filters, depth=auto_generator_depth(image_size))
    return 3 * forward(generator) + 7 * forward(build_discriminator(image_size, filters=filters))


def gpu_peak_bytes() -> int | None:
    if not tf.config.list_physical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"]


def time_steps(args, image_size):
    """Interleaved timing of the reference and every variant, per batch size."""
    rows = []
    flops = step_flops_per_image(image_size, args.filters)
    for batch in args.batch_sizes:
        x = tf.random.uniform((batch, *image_size, 3), -1, 1, seed=1)
        y = tf.random.uniform((batch, *image_size, 3), -1, 1, seed=2)
        it = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
        names = ["reference"] + args.variants
        steps = {"reference": reference_step(image_size, args.filters)} | {v: our_step(v, image_size, args.filters) for v in args.variants}
        rates, peaks = {n: [] for n in names}, {}
        for name in names:
            fn, _ = steps[name]
            if gpu_peak_bytes() is not None:
                tf.config.experimental.reset_memory_stats("GPU:0")
            for _ in range(args.warmup):
                fn(x, y, it)
            peaks[name] = gpu_peak_bytes()
        steps_per_repeat = args.steps or max(2, 8 // batch)
        for _ in range(args.repeats):
            for name in names:
                fn, per_call = steps[name]
                calls = max(1, -(-steps_per_repeat // per_call))
                start = time.perf_counter()
                for _ in range(calls):
                    fn(x, y, it)  # float() of a loss waits for the step to finish
                rates[name].append(calls * per_call * batch / (time.perf_counter() - start))
        ref = statistics.median(rates["reference"])
        for name in names:
            median = statistics.median(rates[name])
            rows.append({"batch_size": batch, "step": name, "img_per_sec": round(median, 3),
                         "ratio_to_reference": round(median / ref, 2), "repeats": [round(r, 3) for r in rates[name]],
                         "conv_gflop_per_sec": round(median * flops / 1e9, 1),
                         "gpu_peak_gib": None if peaks[name] is None else round(peaks[name] / 2**30, 2)})
            print(f"| {batch} | {name} | {median:.3f} | {median / ref:.2f}x | {median * flops / 1e9:.0f} | {rows[-1]['gpu_peak_gib']} |", flush=True)
    return rows


def time_pipeline(args, image_size) -> list[dict]:
    """Train-pipeline img/s alone (decode, jitter, batch, prefetch), with and without the decoded-pair cache."""
    files = list_images(args.data_dir, "train")
    rows = []
    for cache in ("none", "memory"):
        config = TrainConfig(data_dir=args.data_dir, image_size=image_size, batch_size=16, cache=cache)
        it = iter(make_train_dataset(files, config))
        start = time.perf_counter()
        next(it)  # with a cache this waits for the one decoding pass
        first = time.perf_counter() - start
        # Past one full pass, so the cached rate is the steady state of later epochs.
        batches = max(args.pipeline_batches, len(files) // 16 + 1) if cache == "memory" else args.pipeline_batches
        for _ in range(batches):
            next(it)
        rate = batches * 16 / (time.perf_counter() - start - first)
        rows.append({"cache": cache, "img_per_sec": round(rate, 1), "first_batch_seconds": round(first, 1), "batches": batches})
        print(f"pipeline cache={cache}: {rate:.1f} img/s over {batches} batches of 16 (first batch {first:.1f} s)", flush=True)
    return rows


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    gpu = gpu_compute_capability()
    names = [tf.config.experimental.get_device_details(d).get("device_name") for d in tf.config.list_physical_devices("GPU")]
    return {"cpu": cpu, "cpus": os.cpu_count(), "bf16_cpu_flags": sorted(cpu_flags() & {"avx512_bf16", "amx_bf16"}),
            "gpus": names, "auto_precision": resolve_precision("auto", gpu), "auto_xla": resolve_jit_compile("auto", gpu is not None),
            "tensorflow": tf.__version__, "keras": keras.__version__}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[1, 16], help="none given: the input pipeline only")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--filters", type=int, default=64, help="G's and D's first-layer filters (the one-hour recipe: 32)")
    parser.add_argument("--variants", nargs="+", default=["auto"], help="settings of our step: [today:|kernel-grads:]PRECISION[:JIT[:SPE]], or reference-bf16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=0, help="steps per repeat; 0 = max(2, 8 // batch)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per step first (tracing, compiling)")
    parser.add_argument("--data-dir", default="", help="also time the input pipeline on DIR/train")
    parser.add_argument("--pipeline-batches", type=int, default=20)
    parser.add_argument("--json", default="", help="write the results here too")
    args = parser.parse_args(argv)
    image_size = (args.image_size, args.image_size)
    result = {"machine": machine(), "load_before": os.getloadavg(), "image_size": args.image_size}
    print(json.dumps(result["machine"]), "load", result["load_before"], flush=True)
    if args.data_dir:
        result["pipeline"] = time_pipeline(args, image_size)
    if args.batch_sizes:
        print("| batch | step | img/s (median) | ours/reference | conv GFLOP/s | GPU peak GiB |\n|---|---|---|---|---|---|", flush=True)
        result["steps"] = time_steps(args, image_size)
    result["load_after"] = os.getloadavg()
    print("load after", result["load_after"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
