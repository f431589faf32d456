"""The fused layers (core/layers.py) compute Keras' BatchNormalization, LeakyReLU and convs, and the step built
with them gives the reference step's losses and gradients; grappler's remapper no longer fails on it."""

import contextlib
import dataclasses
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf.config import TrainConfig
from pix2pix_tf.core import layers as core_layers
from pix2pix_tf.core import networks
from pix2pix_tf.core.layers import FusableLeakyReLU, FusedBatchNormalization, TapGradConv2D, TapGradConv2DTranspose
from pix2pix_tf.core.model import Pix2Pix
from pix2pix_tf.precision import dtype_policy, weight_gradients_by_taps
from pix2pix_tf.train.loop import build_pix2pix

# Float32 sums in another order (oneDNN's fused kernel vs Keras' separate ops): relative error ~1e-6.
FP32_RTOL = 1e-4
# bf16 keeps 8 bits of mantissa: one rounding step of the output is 2**-8 of its magnitude.
BF16_RTOL = 2**-7


def _max_rel_err(a, b):
    a, b = (np.asarray(tf.cast(t, "float32")) for t in (a, b))
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)


def _bn_pair(shape):
    ref = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    new = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    ref.build(shape)
    new.build(shape)
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        value = tf.random.uniform(shape[-1:], 0.5, 1.5, seed=len(name))
        getattr(ref, name).assign(value)
        getattr(new, name).assign(value)
    return ref, new


@pytest.mark.parametrize("precision,rtol", [("fp32", FP32_RTOL), ("bf16", BF16_RTOL)])
@pytest.mark.parametrize("shape", [(4, 8, 8, 16), (3, 1, 1, 8)])  # (3, 1, 1, .): n = 3 values per channel, a large n / (n - 1)
def test_fused_batchnorm_matches_keras_batchnorm(precision, rtol, shape):
    with dtype_policy(precision):
        ref, new = _bn_pair(shape)
    x = tf.random.normal(shape, 3.0, 2.0, seed=1)
    upstream = tf.random.normal(shape, seed=2)
    start_variance = new.moving_variance.numpy()
    results = []
    for layer in (ref, new):
        xc = tf.cast(x, layer.compute_dtype)
        with tf.GradientTape() as tape:
            tape.watch(xc)
            y = layer(xc, training=True)
            loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
        results.append([y, *tape.gradient(loss, [xc, layer.gamma, layer.beta]), layer.moving_mean, layer.moving_variance])
        assert y.dtype == layer.compute_dtype
    for name, a, b in zip(("y", "dx", "dgamma", "dbeta", "moving_mean", "moving_variance"), *results):
        assert _max_rel_err(b, a) < rtol, name
    # Keras' biased variance (divided by n) feeds the moving average, not the kernel's n / (n - 1) one.
    values = tf.cast(tf.cast(x, new.compute_dtype), "float32").numpy().reshape(-1, shape[-1])
    np.testing.assert_allclose(new.moving_variance.numpy(), 0.9 * start_variance + 0.1 * values.var(axis=0), rtol=rtol)
    # Inference is Keras' own code: identical outputs from identical statistics.
    new.moving_mean.assign(ref.moving_mean)
    new.moving_variance.assign(ref.moving_variance)
    np.testing.assert_array_equal(ref(tf.cast(x, ref.compute_dtype), training=False), new(tf.cast(x, new.compute_dtype), training=False))


@pytest.mark.parametrize("slope", [0.2, 0.0])
def test_fusable_leaky_relu_gradient_is_leaky_relu_gradient_bit_for_bit(slope):
    x = tf.constant([[-3.0, -1e-30, 0.0, 1e-30, 2.5]])
    grads = []
    for layer in (keras.layers.LeakyReLU(negative_slope=slope), FusableLeakyReLU(negative_slope=slope)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        grads.append((y, tape.gradient(y, x, output_gradients=tf.constant([[1.0, 2.0, 3.0, 4.0, 5.0]]))))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])


@pytest.fixture
def taps_at_any_width(monkeypatch):
    """The tiny test layers have far fewer channels than TAPS_MIN_CHANNELS: take the tap path at any width."""
    monkeypatch.setattr(core_layers, "TAPS_MIN_CHANNELS", 1)


CONV_CASES = [  # (layer kwargs, input shape): every conv of G and D, and odd sizes whose "same" padding is uneven
    (dict(filters=8, strides=2, padding="same"), (2, 8, 6, 3)),  # G's encoder
    (dict(filters=8, strides=2, padding="same"), (2, 7, 5, 3)),
    (dict(filters=8, strides=2, padding="valid", use_bias=False), (2, 10, 12, 3)),  # D's stride-2 convs after ZeroPadding2D
    (dict(filters=8, strides=2, padding="valid"), (2, 9, 11, 3)),
    (dict(filters=5, strides=1, padding="valid"), (2, 9, 7, 4)),  # D's last two convs
    (dict(filters=5, strides=1, padding="same"), (2, 9, 7, 4)),
]


def _conv_pair(ref_cls, new_cls, kwargs, shape, precision):
    with dtype_policy(precision):
        ref, new = ref_cls(kernel_size=4, **kwargs), new_cls(kernel_size=4, **kwargs)
    ref.build(shape)
    new.build(shape)
    new.set_weights([tf.random.normal(w.shape, seed=i).numpy() for i, w in enumerate(ref.get_weights())])
    ref.set_weights(new.get_weights())
    return ref, new


def _outputs_and_grads(layer, x, upstream=None):
    xc = tf.cast(x, layer.compute_dtype)
    with tf.GradientTape() as tape:
        tape.watch(xc)
        y = layer(xc, training=True)
        upstream = tf.random.stateless_normal(y.shape, [1, 2]) if upstream is None else upstream
        loss = tf.reduce_sum(tf.cast(y, "float32") * upstream)
    return [y, *tape.gradient(loss, [xc, *layer.trainable_variables])], upstream


@pytest.mark.parametrize("precision,rtol", [("fp32", FP32_RTOL), ("bf16", BF16_RTOL)])
@pytest.mark.parametrize(
    "ref_cls,new_cls,kwargs,shape",
    [(keras.layers.Conv2D, TapGradConv2D, *case) for case in CONV_CASES]
    + [(keras.layers.Conv2DTranspose, TapGradConv2DTranspose, dict(filters=6, strides=2, padding="same"), (2, 4, 3, 5)),
       (keras.layers.Conv2DTranspose, TapGradConv2DTranspose, dict(filters=3, strides=2, padding="same", use_bias=False), (1, 2, 2, 8))],
)
def test_tap_gradient_convs_match_keras_convs(ref_cls, new_cls, kwargs, shape, precision, rtol, taps_at_any_width):
    ref, new = _conv_pair(ref_cls, new_cls, kwargs, shape, precision)
    x = tf.random.normal(shape, seed=1)
    expected, upstream = _outputs_and_grads(ref, x)
    got, _ = _outputs_and_grads(new, x, upstream)
    assert len(got) == (4 if kwargs.get("use_bias", True) else 3)
    for name, a, b in zip(("y", "dx", "dkernel", "dbias"), expected, got):
        assert b.shape == a.shape and b.dtype == a.dtype, name
        assert _max_rel_err(b, a) < rtol, name
    # The forward pass and the input gradient are TensorFlow's own kernels: bit for bit.
    np.testing.assert_array_equal(expected[0], got[0])
    np.testing.assert_array_equal(expected[1], got[1])
    xc = tf.cast(x, new.compute_dtype)
    np.testing.assert_array_equal(ref(xc, training=False), new(xc, training=False))


def test_tap_gradient_conv_leaves_other_convs_to_keras(taps_at_any_width):
    """A 3x3 kernel, a dilation or an unknown spatial size: Keras' own call (its gradient is then Keras')."""
    for kwargs, shape in ((dict(kernel_size=3), (1, 8, 8, 2)), (dict(kernel_size=4, dilation_rate=2), (1, 12, 12, 2))):
        ref, new = keras.layers.Conv2D(4, **kwargs), TapGradConv2D(4, **kwargs)
        ref.build(shape)
        new.build(shape)
        new.set_weights(ref.get_weights())
        x = tf.random.normal(shape, seed=5)
        expected, upstream = _outputs_and_grads(ref, x)
        got, _ = _outputs_and_grads(new, x, upstream)
        for a, b in zip(expected, got):
            np.testing.assert_array_equal(a, b)
    layer = TapGradConv2D(4, 4, 2, padding="same")
    graph_fn = tf.function(lambda x: layer(x, training=True)).get_concrete_function(tf.TensorSpec((None, None, None, 3)))
    assert not any(op.type == "IdentityN" for op in graph_fn.graph.get_operations())  # no custom gradient inserted


def test_tap_gradient_conv_only_at_widths_where_the_taps_pay():
    """Too narrow (under TAPS_MIN_CHANNELS on either side): Keras' conv; wide enough: the taps' custom gradient."""

    def has_custom_gradient(layer, shape):
        fn = tf.function(lambda x: layer(x, training=True)).get_concrete_function(tf.TensorSpec(shape))
        return any(op.type == "IdentityN" for op in fn.graph.get_operations())

    width = core_layers.TAPS_MIN_CHANNELS
    assert not has_custom_gradient(TapGradConv2D(width - 1, 4, 2, padding="same"), (1, 4, 4, width))
    assert not has_custom_gradient(TapGradConv2D(width, 4, 2, padding="same"), (1, 4, 4, width - 1))
    assert has_custom_gradient(TapGradConv2D(width, 4, 2, padding="same"), (1, 4, 4, width))
    assert has_custom_gradient(TapGradConv2DTranspose(width, 4, 2, padding="same"), (1, 2, 2, width))


@pytest.mark.parametrize(
    "precision,gpu,flags,tpu,expected",
    [
        ("bf16", None, {"avx512_bf16"}, False, True),  # measured faster here (BENCHMARKS, issue 22)
        ("bf16", None, {"avx512_bf16", "amx_bf16"}, False, False),  # oneDNN has a brgemm kernel on AMX
        ("bf16", (8, 0), set(), False, False),
        ("bf16", None, set(), True, False),
        ("fp32", None, {"avx512_bf16"}, False, False),
    ],
)
def test_weight_gradients_by_taps_only_where_measured_faster(precision, gpu, flags, tpu, expected):
    assert weight_gradients_by_taps(precision, gpu, flags, tpu) is expected


def test_networks_choose_their_conv_classes():
    def conv_kinds():
        g = networks.build_generator((32, 32), filters=4, depth=3)
        d = networks.build_discriminator((32, 32), filters=4)
        return {type(layer).__name__ for layer in g.layers + d.layers if "Conv" in type(layer).__name__}

    assert conv_kinds() == {"TapGradConv2D", "TapGradConv2DTranspose"}
    with networks.kernel_weight_gradients():
        assert conv_kinds() == {"Conv2D", "Conv2DTranspose"}
    with networks.reference_layers():
        assert conv_kinds() == {"Conv2D", "Conv2DTranspose"}
    assert conv_kinds() == {"TapGradConv2D", "TapGradConv2DTranspose"}  # the blocks restore the defaults
    config = TrainConfig(dataset="synthetic", image_size=(32, 32), generator_filters=4, discriminator_filters=4, generator_depth=3)
    for precision in ("fp32", "bf16"):
        model = build_pix2pix(dataclasses.replace(config, precision=precision))
        kinds = {type(layer).__name__ for layer in model.generator.layers if "Conv" in type(layer).__name__}
        taps = weight_gradients_by_taps(precision, None)
        assert kinds == ({"TapGradConv2D", "TapGradConv2DTranspose"} if taps else {"Conv2D", "Conv2DTranspose"}), precision


def _pix2pix(reference: bool, precision: str):
    keras.utils.set_random_seed(7)
    with dtype_policy(precision), (networks.reference_layers() if reference else contextlib.nullcontext()):
        # depth 3 at 32 px with 4 filters has no dropout block, so both steps see the same forward pass.
        generator = networks.build_generator((32, 32), filters=4, depth=3)
        discriminator = networks.build_discriminator((32, 32), filters=4)
    return Pix2Pix(generator, discriminator)


@pytest.mark.parametrize("precision,rtol", [("fp32", 1e-3), ("bf16", 0.05)])
def test_fused_step_gives_the_reference_steps_losses_and_gradients(precision, rtol, taps_at_any_width, monkeypatch):
    tap_grads = []  # the weight gradients the taps computed: none in the reference step, every conv's in ours
    by_taps = core_layers._weight_gradient_by_taps
    monkeypatch.setattr(core_layers, "_weight_gradient_by_taps", lambda *args: tap_grads.append(args[0].shape) or by_taps(*args))
    ref, new = _pix2pix(True, precision), _pix2pix(False, precision)
    kinds = {type(layer).__name__ for layer in new.generator.layers + new.discriminator.layers}
    ours = {"FusedBatchNormalization", "FusableLeakyReLU", "TapGradConv2D", "TapGradConv2DTranspose"}
    assert ours <= kinds
    assert not ours & {type(layer).__name__ for layer in ref.generator.layers + ref.discriminator.layers}
    for a, b in zip(ref.generator.weights + ref.discriminator.weights, new.generator.weights + new.discriminator.weights):
        b.assign(a)  # same seed, but the layers draw their initializers in another order: copy to be sure
    x = tf.random.uniform((4, 32, 32, 3), -1, 1, seed=3)
    y = tf.random.uniform((4, 32, 32, 3), -1, 1, seed=4)
    out, taps_per_model = [], []
    for model in (ref, new):
        tap_grads.clear()
        with tf.GradientTape(persistent=True) as tape:
            losses = model._compute_losses(x, y, training=True)
            g_loss, d_loss = tf.reduce_mean(losses["g_total"]), tf.reduce_mean(losses["d_total"])
        g_grads = tape.gradient(g_loss, model.generator.trainable_variables)
        d_grads = tape.gradient(d_loss, model.discriminator.trainable_variables)
        out.append(({k: float(tf.reduce_mean(v)) for k, v in losses.items()}, g_grads, d_grads))
        taps_per_model.append(len(tap_grads))
    convs = sum("Conv" in type(layer).__name__ for layer in new.generator.layers + new.discriminator.layers)
    assert taps_per_model[0] == 0 and taps_per_model[1] >= convs, (taps_per_model, convs)
    for name in out[0][0]:
        assert out[1][0][name] == pytest.approx(out[0][0][name], rel=rtol), name
    for ref_grads, new_grads in ((out[0][1], out[1][1]), (out[0][2], out[1][2])):
        # Each variable's gradient as a whole: relative error of the flattened vector.
        for a, b in zip(ref_grads, new_grads):
            a, b = np.ravel(a), np.ravel(b)
            assert np.linalg.norm(a - b) <= rtol * np.linalg.norm(a) + 1e-9


def test_remapper_does_not_fail_on_the_train_step(tmp_path):
    """Grappler logs 'remapper failed' (and drops all its fusions) on the reference layers' train graph, not on ours."""
    script = textwrap.dedent(
        """
        import sys
        import tensorflow as tf
        from pix2pix_tf.config import TrainConfig
        from pix2pix_tf.core import layers, networks
        from pix2pix_tf.train import loop
        from pix2pix_tf.train.loop import build_pix2pix
        config = TrainConfig(dataset="synthetic", image_size=(32, 32), batch_size=2, generator_filters=4,
                             discriminator_filters=4, generator_depth=3, precision=sys.argv[2])
        loop.weight_gradients_by_taps = lambda *args, **kwargs: sys.argv[1] == "taps"  # on any CPU
        layers.TAPS_MIN_CHANNELS = 1  # and at the tiny test widths
        if sys.argv[1] == "reference":
            with networks.reference_layers():
                model = build_pix2pix(config)
        else:
            model = build_pix2pix(config)
        model.make_train_function()
        x = tf.zeros((2, 32, 32, 3))
        model.train_function(iter(tf.data.Dataset.from_tensors((x, x)).repeat()))
        print(" ".join(sorted({type(layer).__name__ for layer in model.generator.layers if "Conv" in type(layer).__name__})))
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0", PYTHONPATH=os.getcwd())
    logs, convs = {}, {}
    for kind, precision in (("reference", "fp32"), ("fused", "fp32"), ("taps", "bf16")):
        result = subprocess.run([sys.executable, "-c", script, kind, precision], capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        logs[kind], convs[kind] = result.stderr, result.stdout.split()
    assert "remapper failed" in logs["reference"]  # the failure this guards against still exists upstream
    assert "remapper failed" not in logs["fused"], logs["fused"][-2000:]
    # The tap-wise weight gradient (a custom gradient around the conv) leaves the remapper working too.
    assert "remapper failed" not in logs["taps"], logs["taps"][-2000:]
    assert convs == {"reference": ["Conv2D", "Conv2DTranspose"], "fused": ["Conv2D", "Conv2DTranspose"],
                     "taps": ["TapGradConv2D", "TapGradConv2DTranspose"]}


def test_tap_gradient_step_runs_under_xla(taps_at_any_width, monkeypatch):
    """`--jit-compile on` on a CPU: the taps' custom gradient compiles with the rest of the step, same losses."""
    from pix2pix_tf.train import loop

    monkeypatch.setattr(loop, "weight_gradients_by_taps", lambda *args, **kwargs: True)
    config = TrainConfig(dataset="synthetic", image_size=(32, 32), batch_size=2, generator_filters=4,
                         discriminator_filters=4, generator_depth=3, precision="bf16", seed=3)
    x = tf.random.uniform((2, 32, 32, 3), -1, 1, seed=6)
    losses = {}
    for jit in ("off", "on"):
        keras.utils.set_random_seed(3)
        model = build_pix2pix(dataclasses.replace(config, jit_compile=jit))
        assert type(model.generator.get_layer("down2_conv")).__name__ == "TapGradConv2D"
        assert model.jit_compile is (jit == "on")
        model.make_train_function()
        logs = model.train_function(iter(tf.data.Dataset.from_tensors((x, x)).repeat()))
        losses[jit] = {k: float(v) for k, v in logs.items()}
    for name, value in losses["off"].items():
        assert np.isfinite(losses["on"][name]) and losses["on"][name] == pytest.approx(value, rel=0.05), name
