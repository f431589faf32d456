"""Serving inputs and model files: malformed input is refused with an error saying what is wrong; no code is loaded."""

import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf.core.networks import build_generator
from pix2pix_tf.deploy.savedmodel import write_serving_savedmodel


@pytest.fixture(scope="module")
def signatures(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("served") / "1")
    write_serving_savedmodel(build_generator((32, 32), filters=4, depth=5), path)
    return tf.saved_model.load(path).signatures


@pytest.mark.parametrize("channels", [5, 6])
def test_uint8_signature_names_a_wrong_channel_count(signatures, channels):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be uint8 \[batch, height, width, C\]"):
        signatures["serving_default"](images=tf.zeros((1, 32, 32, channels), tf.uint8))


@pytest.mark.parametrize("channels", [1, 4])
def test_uint8_signature_converts_gray_and_rgba(signatures, channels):
    out = signatures["serving_default"](images=tf.zeros((1, 20, 24, channels), tf.uint8))["images"]
    assert out.shape == (1, 20, 24, 3) and out.dtype == tf.uint8


def test_uint8_signature_refuses_a_wrong_rank_and_dtype(signatures):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"not compatible with expected shape \[\?,\?,\?,\?\]"):
        signatures["serving_default"](images=tf.zeros((32, 32, 3), tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor"):
        signatures["serving_default"](images=tf.zeros((1, 32, 32, 3), tf.float32))


def test_encoded_signature_rejects_non_image_bytes_with_an_error(signatures):
    good = tf.io.encode_png(np.zeros((20, 30, 3), np.uint8))
    out = signatures["translate_encoded"](image_bytes=tf.stack([good]))["image_bytes"]
    assert tf.io.decode_png(out[0]).shape == (20, 30, 3)
    for data in (b"not an image", b"", good.numpy()[:20]):
        with pytest.raises(tf.errors.InvalidArgumentError, match="image|PNG|Invalid"):
            signatures["translate_encoded"](image_bytes=tf.constant([data]))


def test_keras_files_load_in_safe_mode(tmp_path):
    # A .keras file can carry a Lambda layer's bytecode; safe_mode refuses to run it.
    import keras

    from pix2pix_tf.run import load_generator

    inputs = keras.Input((32, 32, 3))
    path = str(tmp_path / "lambda.keras")
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(path)
    with pytest.raises(ValueError, match="safe_mode"):
        load_generator(keras_file=path)
