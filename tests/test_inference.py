"""Test-time modes (eval / the paper's) and own-size translation: semantics, shapes and agreement with Keras."""

import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf.config import UsageError
from pix2pix_tf.core.networks import build_generator
from pix2pix_tf.deploy.savedmodel import serving_functions, write_serving_savedmodel
from pix2pix_tf.inference import (
    check_own_size,
    inference_generator,
    padded_size,
    scale_mismatch,
    size_multiple,
    translate_own_size,
)

# The same layers on the same pixels through another graph (eager Keras vs a clone or a SavedModel, oneDNN
# kernels chosen per shape): float32 rounding only, up to 300x larger before tanh because the test nets'
# output layer is scaled 300x (see _trained_like).
SAME_NET_TOL = 1e-4


def _trained_like(generator, seed=0):
    """Moves BN statistics away from their (0, 1) initial values, so eval and batch statistics really differ,
    and spreads the output over [-1, 1] (an untrained net paints a flat grey that would hide any difference)."""
    kernel = generator.get_layer("output_deconv").kernel
    kernel.assign(kernel * 300.0)
    rng = np.random.default_rng(seed)
    for layer in generator.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.5, shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.2, shape).astype("float32"))
    return generator


@pytest.fixture(scope="module")
def generator():
    tf.keras.utils.set_random_seed(5)
    return _trained_like(build_generator((32, 32), filters=4, depth=5))  # one dropout layer (up1)


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32")


def test_eval_mode_is_deterministic_and_equals_the_keras_generator(generator):
    x = _images((2, 32, 32, 3))
    net = inference_generator(generator, "eval")
    first, second = net(x, training=False).numpy(), net(x, training=False).numpy()
    np.testing.assert_array_equal(first, second)
    assert np.abs(first - generator(x, training=False).numpy()).max() <= SAME_NET_TOL


def test_paper_mode_draws_new_dropout_masks_and_differs_from_eval(generator):
    x = _images((1, 32, 32, 3))
    net = inference_generator(generator, "paper")
    first, second = net(x, training=False).numpy(), net(x, training=False).numpy()
    assert np.abs(first - second).max() > 1e-3  # dropout: a new mask each call
    assert np.abs(first - generator(x, training=False).numpy()).max() > 1e-3
    # The same seed gives the same masks, call for call: that is what lets export_report compare formats.
    a, b = inference_generator(generator, "paper", seed=7), inference_generator(generator, "paper", seed=7)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_paper_mode_normalizes_each_image_alone():
    """Without dropout (depth 3 has none), paper mode must equal Keras' training-mode BN at batch 1, per image."""
    tf.keras.utils.set_random_seed(6)
    generator = _trained_like(build_generator((32, 32), filters=4, depth=3), seed=1)
    assert not any("dropout" in layer.name for layer in generator.layers)
    a, b, c = _images((1, 32, 32, 3), 1), _images((1, 32, 32, 3), 2), _images((1, 32, 32, 3), 3) * 0.2 + 0.5
    paper = inference_generator(generator, "paper")
    with_b = paper(np.concatenate([a, b]), training=False).numpy()[0]
    with_c = paper(np.concatenate([a, c]), training=False).numpy()[0]
    moving = [v.numpy().copy() for v in generator.non_trainable_variables]
    alone = generator(a, training=True).numpy()[0]  # Keras BN with the statistics of a only
    batch_stats = generator(np.concatenate([a, c]), training=True).numpy()[0]  # statistics of a and c together
    for v, value in zip(generator.non_trainable_variables, moving):  # training=True moved them; put them back
        v.assign(value)
    np.testing.assert_allclose(with_b, with_c, atol=1e-6)  # the batch-mate does not matter
    np.testing.assert_allclose(with_b, alone, atol=SAME_NET_TOL)
    assert np.abs(batch_stats - alone).max() > 1e-2  # so the test can tell batch-of-2 statistics apart


def test_paper_mode_leaves_the_generators_moving_statistics_alone(generator):
    before = [v.numpy().copy() for v in generator.non_trainable_variables if "moving" in v.path]  # 7 BN layers
    inference_generator(generator, "paper")(_images((2, 64, 32, 3)))
    after = [v.numpy() for v in generator.non_trainable_variables if "moving" in v.path]
    assert len(before) == 14 and all(np.array_equal(x, y) for x, y in zip(before, after))


def test_inference_generator_shares_weights_and_keeps_the_parameter_count(generator):
    for mode in ("eval", "paper"):
        net = inference_generator(generator, mode)
        assert net.count_params() == generator.count_params() and net.input_shape == (None, None, None, 3)
        assert {id(v) for v in generator.trainable_variables} <= {id(v) for v in net.trainable_variables}
    with pytest.raises(UsageError, match="--test-mode 'train'"):
        inference_generator(generator, "train")


def test_size_multiple_and_padding_arithmetic(generator):
    assert size_multiple(generator) == 32 and size_multiple(build_generator((256, 256))) == 256
    assert padded_size(45, 70, 32) == (64, 96) and padded_size(64, 32, 32) == (64, 32)
    check_own_size(2048, 2048, 256)
    with pytest.raises(UsageError, match="2049x10 px .* --resize-mode squash"):
        check_own_size(10, 2049, 256, max_pixels=2048 * 256)


def test_scale_mismatch_warns_from_one_and_a_half_times_the_training_size():
    assert scale_mismatch(45, 70, (32, 32)) == "" and scale_mismatch(256, 512, (256, 256)) == ""
    message = scale_mismatch(256, 300, (128, 128))
    assert message.startswith("the image is 300x256 px, 2.0x the 128x128") and "--resize-mode squash" in message


def test_own_size_output_keeps_the_input_size_and_matches_keras_at_a_multiple(generator):
    net = inference_generator(generator, "eval")
    x = _images((2, 45, 70, 3))
    out = translate_own_size(lambda t: net(t, training=False), tf.constant(x), 32)
    assert out.shape == (2, 45, 70, 3)
    at_multiple = _images((2, 64, 96, 3), 4)
    direct = build_generator((64, 96), filters=4, depth=5)
    direct.set_weights(generator.get_weights())  # a fixed-size Keras generator of that size, same weights
    own = translate_own_size(lambda t: net(t, training=False), tf.constant(at_multiple), 32).numpy()
    assert np.abs(own - direct(at_multiple, training=False).numpy()).max() <= SAME_NET_TOL


def test_reflect_padding_mirrors_the_image_and_survives_tiny_images():
    seen = []

    def record(padded):
        seen.append(padded.numpy())
        return padded

    x = tf.constant(np.arange(5 * 7, dtype="float32").reshape(1, 5, 7, 1))
    np.testing.assert_array_equal(translate_own_size(record, x, 8).numpy(), x.numpy())  # cropped back exactly
    expected = tf.pad(x, [[0, 0], [1, 2], [0, 1], [0, 0]], mode="REFLECT").numpy()  # centred: 3 -> 1 + 2, 1 -> 0 + 1
    np.testing.assert_array_equal(seen[0], expected)
    tiny = tf.constant(np.arange(2, dtype="float32").reshape(1, 1, 2, 1))  # pads far longer than the sides
    out = translate_own_size(record, tiny, 8)
    assert seen[1].shape == (1, 8, 8, 1) and set(np.unique(seen[1])) == {0.0, 1.0}
    np.testing.assert_array_equal(out.numpy(), tiny.numpy())


def test_own_size_cap_is_an_error_in_the_graph(generator):
    net = inference_generator(generator, "eval")
    message = r"40x40 px \(padded to a multiple of 32: 64x64\), over the cap of 2048 pixels"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        translate_own_size(lambda t: net(t), tf.zeros((1, 40, 40, 3)), 32, max_pixels=2048)


@pytest.fixture(scope="module")
def saved(generator, tmp_path_factory):
    """SavedModels of the generator: own size in eval and paper mode, squash in eval mode."""
    paths = {}
    for test_mode, resize_mode in (("eval", "own"), ("paper", "own"), ("eval", "squash")):
        path = str(tmp_path_factory.mktemp(f"{test_mode}-{resize_mode}") / "1")
        write_serving_savedmodel(generator, path, test_mode=test_mode, resize_mode=resize_mode, seed=11)
        paths[test_mode, resize_mode] = path
    return paths


def test_savedmodel_own_size_accepts_any_size_and_agrees_with_keras(generator, saved):
    serve = tf.saved_model.load(saved["eval", "own"]).signatures
    spec = serve["serving_default"].structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, None, None, None]
    images = np.random.default_rng(0).integers(0, 256, (2, 45, 70, 3), dtype=np.uint8)
    out = serve["serving_default"](images=tf.constant(images))["images"].numpy()
    assert out.shape == (2, 45, 70, 3) and out.dtype == np.uint8
    net = inference_generator(generator, "eval")
    expected = translate_own_size(lambda t: net(t, training=False), tf.constant(images / 127.5 - 1, tf.float32), 32)
    expected = np.clip(np.round((expected.numpy() + 1) * 127.5), 0, 255)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1  # one uint8 level (rounding at .5)
    png = serve["translate_encoded"](image_bytes=tf.constant([tf.io.encode_png(images[1]).numpy()]))["image_bytes"]
    np.testing.assert_array_equal(tf.io.decode_png(png[0]).numpy(), out[1])
    squashed = tf.saved_model.load(saved["eval", "squash"]).signatures["serving_default"](images=tf.constant(images))
    assert np.abs(squashed["images"].numpy().astype(int) - out.astype(int)).max() > 10  # squash really is another path


def test_savedmodel_paper_mode_is_random_and_seeded_like_keras(generator, saved):
    serve = tf.saved_model.load(saved["paper", "own"]).signatures
    x = _images((2, 32, 32, 3))
    first = serve["translate_float"](images=tf.constant(x))["images"].numpy()
    second = serve["translate_float"](images=tf.constant(x))["images"].numpy()
    assert np.abs(first - second).max() > 1e-3  # the saved dropout seed state advances per call
    reference = inference_generator(generator, "paper", seed=11)  # the export's seed: the same first masks
    assert np.abs(first - reference(x).numpy()).max() <= SAME_NET_TOL
    eval_out = tf.saved_model.load(saved["eval", "own"]).signatures["translate_float"](images=tf.constant(x))["images"]
    assert np.abs(first - eval_out.numpy()).max() > 1e-3
    with open(f"{saved['paper', 'own']}/assets.extra/pix2pix.json") as f:
        assert '"test_mode": "paper"' in f.read()


@pytest.mark.parametrize("channels", [(1, 2), (3, 3)])
def test_own_size_serving_for_colorizers_and_paired_models(channels):
    generator = build_generator((32, 32), *channels, filters=4, depth=5)
    functions = {name: fn for name, (fn, _) in serving_functions(generator, resize_mode="own").items()}
    images = np.random.default_rng(1).integers(0, 256, (1, 45, 70, 3), dtype=np.uint8)
    out = functions["serving_default"](tf.constant(images))["images"]
    assert out.shape == (1, 45, 70, 3) and out.dtype == tf.uint8
