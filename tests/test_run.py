"""pix2pix_tf.run: a run directory read back by every tool, from its output folder or its checkpoints/ alike."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf.config import TrainConfig, UsageError
from pix2pix_tf.core.networks import build_generator
from pix2pix_tf.predict import main as predict_main
from pix2pix_tf.run import find_run_dir, read_history, read_run_config, restore_generator, write_run_config


@pytest.fixture(scope="module")
def run_dir(pair_dir, tmp_path_factory):
    """A run folder as train.py leaves it: config.json and a checkpoint holding G (and the epoch) at step 7."""
    out = str(tmp_path_factory.mktemp("run"))
    config = TrainConfig(data_dir=pair_dir, image_size=32, generator_filters=4, generator_depth=5, output_dir=out)
    write_run_config(out, config)
    generator = build_generator((32, 32), filters=4, depth=5)
    epoch = tf.Variable(3, dtype=tf.int64)
    tf.train.CheckpointManager(tf.train.Checkpoint(generator=generator, epoch=epoch), os.path.join(out, "checkpoints"), 1).save(7)
    return out, generator


def test_the_run_folder_and_its_checkpoints_read_the_same(run_dir):
    out, generator = run_dir
    assert find_run_dir(out) == find_run_dir(os.path.join(out, "checkpoints")) == os.path.normpath(out)
    for path in (out, os.path.join(out, "checkpoints"), os.path.join(out, "checkpoints") + os.sep):
        restored = restore_generator(path)
        assert restored.run_dir == os.path.normpath(out) and restored.epoch == 3
        assert restored.checkpoint.endswith("ckpt-7") and restored.config == read_run_config(os.path.join(out, "config.json"))
        for mine, saved in zip(restored.generator.weights, generator.weights, strict=True):
            np.testing.assert_array_equal(mine.numpy(), saved.numpy())


def test_an_earlier_checkpoint_is_restored_by_its_prefix(run_dir):
    out, generator = run_dir
    first = {w.path: w.numpy() for w in generator.weights}
    epoch = tf.Variable(4, dtype=tf.int64)
    for w in generator.trainable_weights:
        w.assign(w + 1.0)
    tf.train.CheckpointManager(tf.train.Checkpoint(generator=generator, epoch=epoch), os.path.join(out, "checkpoints"), 2).save(9)
    earlier = os.path.join(out, "checkpoints", "ckpt-7")
    assert find_run_dir(earlier) == os.path.normpath(out)
    restored, latest = restore_generator(earlier), restore_generator(out)
    assert (restored.epoch, latest.epoch) == (3, 4) and restored.checkpoint == earlier and latest.checkpoint.endswith("ckpt-9")
    for w in restored.generator.weights:
        np.testing.assert_array_equal(w.numpy(), first[w.path])
    assert not np.array_equal(latest.generator.trainable_weights[0].numpy(), first[latest.generator.trainable_weights[0].path])
    with pytest.raises(UsageError, match=r"ckpt-8 is not a checkpoint \(kept in .*checkpoints: ckpt-7, ckpt-9\); .*--keep-checkpoints"):
        restore_generator(os.path.join(out, "checkpoints", "ckpt-8"))


def test_restore_generator_names_what_is_missing(tmp_path, run_dir):
    with pytest.raises(UsageError, match="config.json not found: --checkpoint-dir must be a train.py --output-dir"):
        restore_generator(str(tmp_path / "checkpoints"))
    write_run_config(str(tmp_path), read_run_config(os.path.join(run_dir[0], "config.json")))
    with pytest.raises(UsageError, match="no checkpoint in .*train first"):
        restore_generator(str(tmp_path))


def test_restore_generator_builds_under_the_precision_asked(run_dir):
    assert restore_generator(run_dir[0]).generator.get_layer("down2_conv").compute_dtype == "float32"
    restored = restore_generator(run_dir[0], precision=lambda run_precision: "bf16")
    assert restored.generator.get_layer("down2_conv").compute_dtype == "bfloat16"
    assert restored.generator.get_layer("down2_conv").kernel.dtype == "float32"  # the weights stay float32


def test_history_rows_past_the_checkpoint_are_dropped(tmp_path):
    path = tmp_path / "history.json"
    path.write_text(json.dumps([{"epoch": 1, "g_l1": 0.5}, {"epoch": 2, "g_l1": 0.4}, {"epoch": 3, "g_l1": 0.3}]))
    assert [row["epoch"] for row in read_history(str(path), 2)] == [1, 2]
    assert read_history(str(path), 0) == [] and read_history(str(tmp_path / "none.json"), 5) == []


def test_predict_takes_the_run_folder_too(run_dir, pair_dir, tmp_path):
    out, _ = run_dir
    image = os.path.join(pair_dir, "val", min(os.listdir(os.path.join(pair_dir, "val"))))
    for i, path in enumerate((out, os.path.join(out, "checkpoints"))):
        assert predict_main([image, "--checkpoint-dir", path, "--output-dir", str(tmp_path / str(i))]) == 0
    first, second = (tf.io.decode_png(tf.io.read_file(str(tmp_path / str(i) / "00001.png"))).numpy() for i in (0, 1))
    assert first.shape == (64, 128, 3)
    np.testing.assert_array_equal(first, second)
