"""Every conv of G and D, one op at a time: forward, input gradient, and the weight gradient two ways.

For each 4x4 conv and transposed conv of the networks at `--image-size`/`--filters` (shapes read off
the built models), times TensorFlow's forward op, its input-gradient op, its weight-gradient op
(Conv2DBackpropFilter: oneDNN's kernel on a CPU) and core/layers.py's tap-wise weight gradient (one
matmul per kernel tap), each as a `tf.function` on random bf16 tensors, median of `--repeats`, and
prints GFLOP/s (multiply-adds x 2). The last lines give a large bf16 matmul's GFLOP/s and the fastest
op measured: what this CPU does at best, the yardstick for "a fraction of its peak".

    python benchmarks/conv_kernels.py --image-size 256 --filters 64 --batch-size 1
    python benchmarks/conv_kernels.py --image-size 256 --filters 64 --batch-size 16 --json benchmarks/results/conv-kernels-256-b16.json
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

from pix2pix_tf.core import networks  # noqa: E402
from pix2pix_tf.core.layers import _weight_gradient_by_taps  # noqa: E402
from pix2pix_tf.config import auto_generator_depth  # noqa: E402

BF16 = tf.bfloat16


def median_ms(fn, repeats: int) -> float:
    fn()  # trace
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn().numpy()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def conv_ops(layer, batch: int):
    """(forward, input gradient, kernel weight gradient, tap weight gradient) of one layer, as tf.functions."""
    h, w, cin = layer.input.shape[1:]
    cout, s, pad = layer.filters, layer.strides[0], layer.padding
    x = tf.cast(tf.random.normal([batch, h, w, cin]), BF16)
    transpose = isinstance(layer, keras.layers.Conv2DTranspose)
    if transpose:  # kernel [4, 4, cout, cin]: the conv it transposes maps y [N, 2h, 2w, cout] to x
        kernel = tf.cast(tf.random.normal([4, 4, cout, cin]), BF16)
        y = tf.cast(tf.random.normal([batch, 2 * h, 2 * w, cout]), BF16)
        conv_in, conv_out, conv_pad = y, x, "SAME"
        forward = tf.function(lambda: tf.nn.conv2d_transpose(x, kernel, y.shape, 2, "SAME"))
        input_grad = tf.function(lambda: tf.nn.conv2d(y, kernel, 2, "SAME"))
    else:
        kernel = tf.cast(tf.random.normal([4, 4, cin, cout]), BF16)
        conv_in, conv_pad = x, pad.upper()
        conv_out = tf.cast(tf.random.normal(tf.nn.conv2d(x, kernel, s, conv_pad).shape), BF16)
        forward = tf.function(lambda: tf.nn.conv2d(x, kernel, s, conv_pad))
        input_grad = tf.function(lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=x.shape, filter=kernel, out_backprop=conv_out, strides=[1, s, s, 1], padding=conv_pad))
    stride = 2 if transpose else s
    kernel_grad = tf.function(lambda: tf.raw_ops.Conv2DBackpropFilter(
        input=conv_in, filter_sizes=kernel.shape, out_backprop=conv_out, strides=[1, stride, stride, 1], padding=conv_pad))
    tap_grad = tf.function(lambda: _weight_gradient_by_taps(conv_in, conv_out, stride, conv_pad.lower()))
    # One multiply-add per (output position of the conv, kernel weight).
    flops = 2 * conv_out.shape[0] * conv_out.shape[1] * conv_out.shape[2] * 16 * conv_in.shape[-1] * conv_out.shape[-1]
    return (forward, input_grad, kernel_grad, tap_grad), flops


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="write the rows here too")
    args = parser.parse_args(argv)
    size = (args.image_size, args.image_size)
    models = [networks.build_generator(size, filters=args.filters, depth=auto_generator_depth(size)),
              networks.build_discriminator(size, filters=args.filters)]
    kinds = ("forward", "input grad", "weight grad (kernel)", "weight grad (taps)")
    rows, totals = [], dict.fromkeys(kinds, 0.0)
    print("| layer | in | out ch | GFLOP | " + " | ".join(f"{k} GFLOP/s" for k in kinds) + " | taps ÷ kernel |")
    print("|---|---|---|---|" + "---|" * len(kinds) + "---|")
    for model in models:
        for layer in model.layers:
            if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
                continue
            ops, flops = conv_ops(layer, args.batch_size)
            ms = {k: median_ms(op, args.repeats) for k, op in zip(kinds, ops)}
            for k in kinds:
                totals[k] += ms[k]
            rows.append({"layer": layer.name, "input": list(layer.input.shape[1:]), "filters": layer.filters,
                         "gflop": flops / 1e9, "ms": ms})
            rates = " | ".join(f"{flops / ms[k] / 1e6:.0f}" for k in kinds)
            print(f"| {layer.name} | {'x'.join(map(str, layer.input.shape[1:]))} | {layer.filters} | {flops / 1e9:.3f} | {rates} | "
                  f"{ms['weight grad (kernel)'] / ms['weight grad (taps)']:.2f}x |", flush=True)
    print("| all convs, ms | | | | " + " | ".join(f"{totals[k]:.1f}" for k in kinds) + f" | {totals[kinds[2]] / totals[kinds[3]]:.2f}x |")
    a = tf.cast(tf.random.normal([4096, 4096]), BF16)
    matmul = 2 * 4096**3 / median_ms(tf.function(lambda: tf.matmul(a, a)), args.repeats) / 1e6
    best = max(r["gflop"] * 1e3 / r["ms"][k] for r in rows for k in kinds)
    print(f"bf16 matmul 4096x4096: {matmul:.0f} GFLOP/s; fastest conv op above: {best:.0f} GFLOP/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "totals_ms": totals, "matmul_4096_gflops": matmul,
                       "fastest_op_gflops": best}, f, indent=1)


if __name__ == "__main__":
    main()
