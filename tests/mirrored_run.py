"""Child process of test_distribute: the same steps under the default strategy and a 2-replica MirroredStrategy.

Run apart from pytest because the host CPU must be split into two logical devices before TensorFlow
initializes its devices. Writes a JSON report to argv[2] that the test asserts on.

    python tests/mirrored_run.py PAIR_DIR REPORT.json
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

STEPS, SEED = 3, 7


def split_cpu_in_two() -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def build(config, strategy):
    from pix2pix_tf.train.loop import build_pix2pix

    keras.utils.set_random_seed(SEED)
    with strategy.scope():
        model = build_pix2pix(config)
    for layer in model.generator.layers:
        if isinstance(layer, keras.layers.Dropout):
            # Every replica draws the same dropout mask for its half of the batch (Keras mirrors the seed
            # state), unlike one device's mask for the whole batch: masks, not maths, would differ.
            layer.rate = 0.0
    return model


def weights(model) -> list[np.ndarray]:
    return [w.numpy() for w in model.generator.weights + model.discriminator.weights]


def fit_both(config, files) -> dict:
    """The same 3 steps (same global batch of 4, same seed, instance norm) on 1 and on 2 replicas."""
    from pix2pix_tf.data.pairs import make_train_dataset
    from pix2pix_tf.train.runtime import make_strategy

    report = {}
    for name in ("default", "mirrored"):
        strategy = make_strategy(name)
        model = build(config, strategy)
        history = model.fit(make_train_dataset(files, config), epochs=1, steps_per_epoch=STEPS, verbose=0)
        report[name] = {
            "replicas": strategy.num_replicas_in_sync,
            "losses": {k: v[0] for k, v in history.history.items()},
            "weights": weights(model),
            "iterations": int(model.g_optimizer.iterations.numpy()),
        }
    pairs = zip(report["default"].pop("weights"), report["mirrored"].pop("weights"))
    report["max_weight_diff"] = max(float(np.max(np.abs(a - b))) for a, b in pairs)
    return report


def batchnorm_per_replica(config, files) -> dict:
    """G in training mode under 2 replicas vs one device: per-replica batch statistics."""
    from pix2pix_tf.data.pairs import make_eval_dataset
    from pix2pix_tf.train.runtime import make_strategy

    x, _ = next(iter(make_eval_dataset(files, config, batch_size=4)))
    strategy = make_strategy("mirrored")
    mirrored = build(config, strategy).generator
    halves = strategy.experimental_distribute_values_from_function(lambda ctx: x[2 * ctx.replica_id_in_sync_group :][:2])
    per_replica = strategy.run(lambda half: mirrored(half, training=True), args=(halves,))
    replicated = tf.concat(strategy.experimental_local_results(per_replica), axis=0)
    single = build(config, make_strategy("default")).generator
    single.set_weights(mirrored.get_weights())
    on_halves = tf.concat([single(x[:2], training=True), single(x[2:], training=True)], axis=0)
    on_batch = single(x, training=True)
    return {
        "vs_halves": float(tf.reduce_max(tf.abs(replicated - on_halves))),
        "vs_whole_batch": float(tf.reduce_max(tf.abs(replicated - on_batch))),
    }


def main(pair_dir: str, report_path: str) -> None:
    split_cpu_in_two()
    from pix2pix_tf.config import TrainConfig
    from pix2pix_tf.data.pairs import list_images

    # fp32: the comparison is at float32 rounding (auto would pick bf16 on CPUs with AVX512-BF16/AMX).
    common = dict(data_dir=pair_dir, image_size=32, batch_size=4, generator_filters=4, discriminator_filters=4, seed=SEED,
                  precision="fp32")
    files = list_images(pair_dir, "train")
    # Instance norm: per-example statistics, so 2 replicas x 2 images compute what 1 device x 4 does.
    report = fit_both(TrainConfig(norm="instance", deterministic=True, **common), files)
    report["batchnorm"] = batchnorm_per_replica(TrainConfig(norm="batch", **common), files)
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:3])
