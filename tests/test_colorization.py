"""Colorization: the Lab conversion against published values, photo folders, L -> ab examples, channel options."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf.config import TrainConfig, UsageError
from pix2pix_tf.core.networks import build_generator
from pix2pix_tf.data.pairs import as_rgb, make_train_dataset, to_float
from pix2pix_tf.data.synthetic import write_synthetic_photos
from pix2pix_tf.deploy.savedmodel import serving_functions
from pix2pix_tf.tasks import make_task
from pix2pix_tf.tasks.colorization import (
    colorize,
    eval_example,
    lab_to_rgb,
    list_photos,
    model_to_rgb,
    rgb_to_lab,
    rgb_to_model,
    train_example,
)
from pix2pix_tf.train.callbacks import SampleGrid
from pix2pix_tf.train.loop import build_pix2pix

# sRGB (D65, 2 degree) -> CIE Lab, as published (Lindbloom's calculator, CIE 15 formulas).
PUBLISHED_LAB = {
    (1.0, 0.0, 0.0): (53.24, 80.09, 67.20),
    (0.0, 1.0, 0.0): (87.73, -86.18, 83.18),
    (0.0, 0.0, 1.0): (32.30, 79.19, -107.86),
    (1.0, 1.0, 1.0): (100.0, 0.0, 0.0),
    (0.0, 0.0, 0.0): (0.0, 0.0, 0.0),
}


def test_rgb_to_lab_matches_published_values():
    lab = rgb_to_lab(np.array(list(PUBLISHED_LAB), np.float32)).numpy()
    np.testing.assert_allclose(lab, np.array(list(PUBLISHED_LAB.values())), atol=0.01)


def test_lab_round_trip_within_one_level():
    rng = np.random.default_rng(0)
    corners = np.array([[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)], np.float32)  # primaries, white, black
    colours = np.concatenate([corners, rng.random((20000, 3), np.float32), rng.integers(0, 256, (20000, 3)) / 255])
    back = lab_to_rgb(rgb_to_lab(colours)).numpy()
    assert np.abs(back - colours).max() < 1 / 255
    # Any rank: a batch of images converts the same way as a list of colours.
    images = colours[:20000].reshape(5, 40, 100, 3)
    np.testing.assert_allclose(rgb_to_lab(images).numpy().reshape(-1, 3), rgb_to_lab(colours[:20000]).numpy(), atol=1e-4)


def test_model_scaling_spans_the_gamut_inside_unit_range():
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 33)] * 3, indexing="ij"), -1).reshape(-1, 3).astype(np.float32)
    lightness, ab = rgb_to_model(grid)
    assert lightness.shape == (33**3, 1) and ab.shape == (33**3, 2)
    assert -1 <= float(tf.reduce_min(lightness)) and float(tf.reduce_max(lightness)) <= 1
    assert float(tf.reduce_max(tf.abs(ab))) <= 1  # tanh can reach every sRGB colour
    assert float(tf.reduce_max(tf.abs(ab))) > 0.8  # ... and the scale is not wastefully wide
    np.testing.assert_allclose(model_to_rgb(lightness, ab).numpy(), grid, atol=2 / 255)


def _write_png(path, image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(image))


def test_examples_are_l_and_ab_of_the_photo(tmp_path):
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    _write_png(str(tmp_path / "photo.png"), photo)
    lightness, ab = eval_example(tf.constant(str(tmp_path / "photo.png")), (32, 32))
    assert lightness.shape == (32, 32, 1) and ab.shape == (32, 32, 2)
    np.testing.assert_allclose(model_to_rgb(lightness, ab).numpy(), to_float(photo).numpy(), atol=2 / 255)

    _write_png(str(tmp_path / "gray.png"), photo[..., :1])
    lightness, ab = train_example(tf.constant(str(tmp_path / "gray.png")), tf.constant([1, 2], tf.int64), (32, 32))
    assert lightness.shape == (32, 32, 1) and ab.shape == (32, 32, 2)
    assert float(tf.reduce_max(tf.abs(ab))) < 0.01  # a gray photo has no colour


def test_list_photos_splits_a_flat_folder_and_honours_train_val(tmp_path):
    flat = write_synthetic_photos(str(tmp_path / "flat"), count=20, size=32)
    _write_png(str(tmp_path / "flat" / "album" / "nested.png"), np.zeros((32, 32, 3), np.uint8))
    train, val = list_photos(flat, "train", 0.25), list_photos(flat, "val", 0.25)
    assert len(val) == 5 and len(train) == 16 and not set(train) & set(val)
    assert any(p.endswith("nested.png") for p in train + val)  # nested folders are read too
    assert val == list_photos(flat, "val", 0.25)  # the split is fixed

    split = str(tmp_path / "split")
    write_synthetic_photos(os.path.join(split, "train"), count=3, size=32)
    write_synthetic_photos(os.path.join(split, "val"), count=2, size=32, seed=1)
    assert [os.path.basename(p) for p in list_photos(split, "val", 0.5)] == ["00001.jpg", "00002.jpg"]
    assert len(list_photos(split, "train", 0.5)) == 3

    with pytest.raises(UsageError, match="does not exist"):
        list_photos(str(tmp_path / "missing"), "train", 0.1)
    one = write_synthetic_photos(str(tmp_path / "one"), count=1, size=32)
    with pytest.raises(UsageError, match="at least 2"):
        list_photos(one, "train", 0.1)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"task": "colorization", "input_channels": 3}, "maps L \\(1 channel\\) to ab \\(2 channels\\)"),
        ({"task": "colorization", "output_channels": 3}, "maps L \\(1 channel\\) to ab"),
        ({"output_channels": 2}, "--output-channels 2: paired images are read as 1 \\(grayscale\\) or 3 \\(RGB\\)"),
        ({"input_channels": 4}, "--input-channels 4"),
        ({"task": "colorization", "dataset": "facades"}, "reads a folder of photos, not the facades pairs"),
        ({"task": "depth"}, "unknown --task"),
        ({"val_fraction": 1.0}, "--val-fraction"),
    ],
)
def test_channel_mismatches_are_clear_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(**{"dataset": "synthetic", "image_size": 32, **kwargs})


def test_networks_follow_the_task_channels():
    colorize = build_pix2pix(TrainConfig(dataset="synthetic", task="colorization", image_size=32, generator_filters=4, discriminator_filters=4))
    assert colorize.generator.input_shape == (None, 32, 32, 1) and colorize.generator.output_shape == (None, 32, 32, 2)
    assert [s[-1] for s in colorize.discriminator.input_shape] == [1, 2]  # D sees L concat ab: 3 channels
    depth = build_pix2pix(TrainConfig(dataset="synthetic", output_channels=1, image_size=32, generator_filters=4, discriminator_filters=4))
    assert depth.generator.input_shape[-1] == 3 and depth.generator.output_shape[-1] == 1


def test_paired_pipeline_converts_to_the_requested_channels(pair_dir):
    config = TrainConfig(data_dir=pair_dir, input_channels=1, image_size=32, batch_size=2)
    task = make_task(config)
    x, y = next(iter(make_train_dataset(task.list_files(pair_dir, "train"), config, example_fn=task.train_example)))
    assert x.shape == (2, 32, 32, 1) and y.shape == (2, 32, 32, 3)
    assert task.to_rgb(x).shape == (2, 32, 32, 3)  # a gray input is shown as RGB next to the output
    # Colorization's display hook rebuilds RGB from L and ab, and shows L alone as gray.
    lightness, ab = rgb_to_model(tf.constant([[[[0.5, -0.2, 0.1]]]]))
    colorize = make_task(TrainConfig(dataset="synthetic", task="colorization", image_size=32))
    np.testing.assert_allclose(colorize.to_rgb(lightness, ab).numpy(), [[[[0.5, -0.2, 0.1]]]], atol=1e-3)
    gray = colorize.to_rgb(lightness).numpy()[0, 0, 0]
    assert np.ptp(gray) < 1e-3


def test_sample_grid_shows_a_grayscale_input_next_to_rgb(pair_dir, tmp_path):
    config = TrainConfig(data_dir=pair_dir, input_channels=1, image_size=32, batch_size=2, generator_filters=4, discriminator_filters=4)
    task = make_task(config)
    model = build_pix2pix(config)
    x, y = next(iter(make_train_dataset(task.list_files(pair_dir, "train"), config)))
    grid = SampleGrid(x, y, str(tmp_path / "samples"), str(tmp_path / "tb"), task.to_rgb)
    grid.set_model(model)
    grid.on_epoch_end(0)
    assert grid.input_u8.shape == (2, 32, 32, 3) and os.path.getsize(tmp_path / "samples" / "epoch_001.png") > 0


def test_colorize_keeps_the_input_lightness_at_any_size():
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, (2, 40, 24, 1), dtype=np.uint8)
    rgb, rgba = np.repeat(gray, 3, -1), np.concatenate([np.repeat(gray, 3, -1), np.full_like(gray, 7)], -1)
    np.testing.assert_array_equal(as_rgb(gray).numpy(), rgb)
    np.testing.assert_array_equal(as_rgb(rgba).numpy(), rgb)
    # A stand-in network predicting ab = 0: colorizing gray must give the same gray back, at the input size.
    inputs = keras.Input((32, 32, 1))
    no_colour = keras.Model(inputs, keras.layers.Lambda(lambda l: tf.concat([l, l], -1) * 0.0)(inputs))
    serve = tf.function(lambda images: colorize(images, no_colour, (32, 32)), input_signature=[tf.TensorSpec((None, None, None, None), tf.uint8)])
    for images in (gray, rgb, rgba):  # one graph for every channel count, as a serving signature needs
        out = serve(tf.constant(images)).numpy()
        assert out.shape == (2, 40, 24, 3) and out.dtype == np.uint8
        assert np.abs(out.astype(int) - rgb).max() <= 1


@pytest.mark.parametrize("channels", [(1, 3), (3, 1)])
def test_paired_serving_functions_convert_inputs_to_the_model_channels(channels):
    generator = build_generator((32, 32), *channels, filters=4, depth=5)
    functions = {name: fn for name, (fn, _) in serving_functions(generator).items()}
    rgb = np.random.default_rng(3).integers(0, 256, (2, 40, 24, 3), dtype=np.uint8)
    for images in (rgb, rgb[..., :1]):  # RGB and gray clients alike
        out = functions["serving_default"](tf.constant(images))["images"]
        assert out.shape == (2, 40, 24, channels[1]) and out.dtype == tf.uint8
    (png,) = functions["translate_encoded"](tf.constant([tf.io.encode_png(rgb[0]).numpy()]))["image_bytes"].numpy()
    assert tf.io.decode_png(png).shape == (40, 24, channels[1])


def test_colorize_at_the_images_own_size_runs_the_network_there():
    """--resize-mode own: L of a 45x70 photo reaches the network padded to 64x96 (a 32 px model of depth 5)."""
    seen = []

    def no_colour(lightness):  # a stand-in network of any size predicting ab = 0, recording what it sees
        seen.append(tuple(lightness.shape))
        return tf.zeros_like(tf.concat([lightness, lightness], -1))

    gray = np.random.default_rng(4).integers(0, 256, (1, 45, 70, 1), dtype=np.uint8)
    out = colorize(tf.constant(gray), no_colour, (32, 32), resize_mode="own", multiple=32).numpy()
    assert seen == [(1, 64, 96, 1)] and out.shape == (1, 45, 70, 3)
    assert np.abs(out.astype(int) - np.repeat(gray, 3, -1)).max() <= 1  # L kept, no colour added


@pytest.mark.parametrize("channels", [(1, 2), (3, 3)])  # a colorizer and an RGB pix2pix alike
def test_serving_default_names_a_wrong_channel_count_for_every_task(channels):
    generator = build_generator((32, 32), *channels, filters=4, depth=5)
    serve = tf.function(serving_functions(generator)["serving_default"][0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="C = 1 \\(gray\\), 2 \\(gray\\+alpha\\), 3 \\(RGB\\) or 4"):
        serve(tf.zeros((1, 32, 32, 5), tf.uint8))
