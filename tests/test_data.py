"""Data pipeline on generated JPEG fixtures: halves, direction, identical jitter, ranges."""

import os

import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf.config import TrainConfig, UsageError
from pix2pix_tf.data.pairs import (
    list_images,
    load_pair,
    load_size,
    make_eval_dataset,
    make_train_dataset,
    random_jitter,
    to_float,
    to_uint8,
)


@pytest.fixture
def marked_pair(tmp_path):
    """A PNG (lossless) whose left half is all 10 and right half all 200."""
    image = np.concatenate([np.full((32, 32, 3), 10, np.uint8), np.full((32, 32, 3), 200, np.uint8)], axis=1)
    path = str(tmp_path / "pair.png")
    tf.io.write_file(path, tf.io.encode_png(image))
    return path


@pytest.mark.parametrize("direction,input_value,target_value", [("AtoB", 10, 200), ("BtoA", 200, 10)])
def test_direction_picks_the_halves(marked_pair, direction, input_value, target_value):
    x, y = load_pair(tf.constant(marked_pair), direction)
    assert x.shape == (32, 32, 3) and y.shape == (32, 32, 3)
    assert int(tf.reduce_min(x)) == int(tf.reduce_max(x)) == input_value
    assert int(tf.reduce_min(y)) == int(tf.reduce_max(y)) == target_value


def test_grayscale_and_rgba_files_become_rgb(tmp_path):
    for name, channels in (("gray.png", 1), ("rgba.png", 4)):
        path = str(tmp_path / name)
        tf.io.write_file(path, tf.io.encode_png(np.full((16, 32, channels), 255, np.uint8)))
        x, y = load_pair(tf.constant(path), "AtoB")
        assert x.shape == (16, 16, 3) and y.shape == (16, 16, 3)


def test_jitter_crops_and_flips_both_halves_identically():
    # Input and target carry the same coordinate pattern: any crop/flip mismatch shows as a difference.
    ramp = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3)) + np.arange(64, dtype=np.uint8)[:, None, None]
    flips = []
    for s in range(8):
        x, y = random_jitter(tf.constant(ramp), tf.constant(ramp), (48, 48), tf.constant([s, 7], tf.int64))
        assert x.shape == (48, 48, 3) and y.shape == (48, 48, 3)
        np.testing.assert_array_equal(x.numpy(), y.numpy())
        flips.append(bool(x[0, 0, 0] > x[0, -1, 0]))
    assert any(flips) and not all(flips)  # some mirrored, some not
    assert load_size((256, 256)) == (286, 286)


def test_jitter_is_a_function_of_its_seed():
    image = tf.constant(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    a = random_jitter(image, image, (32, 32), tf.constant([1, 2], tf.int64))[0]
    b = random_jitter(image, image, (32, 32), tf.constant([1, 2], tf.int64))[0]
    c = random_jitter(image, image, (32, 32), tf.constant([3, 4], tf.int64))[0]
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), c.numpy())


def test_float_uint8_round_trip():
    u8 = tf.constant(np.arange(256, dtype=np.uint8))
    f = to_float(u8)
    assert float(tf.reduce_min(f)) == -1.0 and float(tf.reduce_max(f)) == 1.0
    np.testing.assert_array_equal(to_uint8(f).numpy(), u8.numpy())


def test_train_and_eval_datasets(pair_dir):
    config = TrainConfig(data_dir=pair_dir, image_size=32, batch_size=4)
    x, y = next(iter(make_train_dataset(list_images(pair_dir, "train"), config)))
    assert x.shape == (4, 32, 32, 3) and y.shape == (4, 32, 32, 3)
    assert float(tf.reduce_min(x)) >= -1.0 and float(tf.reduce_max(x)) <= 1.0
    batches = list(make_eval_dataset(list_images(pair_dir, "val"), config, batch_size=3))
    assert [int(b[0].shape[0]) for b in batches] == [3, 1]


def test_train_stream_is_seeded_and_resumable(pair_dir):
    files = list_images(pair_dir, "train")
    config = TrainConfig(data_dir=pair_dir, image_size=32, batch_size=2, seed=5, deterministic=True)
    full = [b[0].numpy() for b in make_train_dataset(files, config).take(8)]
    again = [b[0].numpy() for b in make_train_dataset(files, config).take(8)]
    resumed = [b[0].numpy() for b in make_train_dataset(files, config, start_step=5).take(3)]
    for a, b in zip(full, again):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(full[5:], resumed):
        np.testing.assert_array_equal(a, b)


def test_missing_and_empty_splits_are_clear_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        list_images(str(tmp_path), "train")
    os.makedirs(tmp_path / "train")
    (tmp_path / "train" / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="no images found"):
        list_images(str(tmp_path), "train")
