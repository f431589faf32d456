"""The paper's BatchNorm and LeakyReLU, computed faster: same maths, kernels TensorFlow can fuse."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers


@keras.saving.register_keras_serializable(package="pix2pix_tf")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization whose training-mode forward and backward pass are one kernel each.

    Keras 3 normalizes with ~10 separate ops per layer (moments, then scale and shift) and, under
    mixed precision, first casts the whole activation to float32 and back: a dozen passes over
    memory per layer and direction. TensorFlow's `FusedBatchNormV3` (oneDNN on CPU, cuDNN on GPU)
    reads the bf16/fp16 activation directly, accumulates its statistics in float32 and has a fused
    gradient. Same variables, same batch statistics, same moving-average update (fed Keras' biased
    variance, not the kernel's Bessel-corrected one), so checkpoints and exports are interchangeable
    with Keras' layer. Inference, and any setting the kernel does not cover (a mask, another axis or
    rank, renorm, another Keras backend), runs Keras' own code.
    """

    def _fusable(self, inputs, training, mask) -> bool:
        return (
            bool(training)
            and self.trainable
            and mask is None
            and not self.renorm
            and not self.synchronized
            and keras.backend.backend() == "tensorflow"
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels])
        beta = self.beta if self.center else tf.zeros([channels])
        # x stays in the compute dtype (bf16/fp16/fp32); scale, offset and the statistics are float32.
        out = tf.raw_ops.FusedBatchNormV3(
            x=tf.cast(inputs, self.compute_dtype),
            scale=tf.cast(gamma, "float32"),
            offset=tf.cast(beta, "float32"),
            mean=tf.zeros([0]),
            variance=tf.zeros([0]),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        # The kernel returns the variance divided by n - 1 (n = N*H*W, at least 2); Keras' layer, whose
        # moving average this one must keep, uses the biased one (divided by n).
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), "float32")
        variance = out.batch_variance * tf.maximum(count - 1.0, 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + out.batch_mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return out.y


@keras.saving.register_keras_serializable(package="pix2pix_tf")
class FusableLeakyReLU(layers.LeakyReLU):
    """LeakyReLU whose training-mode gradient reads its output instead of its input.

    After a conv with a bias (no norm between), grappler's remapper fuses Conv2D + BiasAdd + LeakyRelu
    into one kernel, deleting the BiasAdd node; but TensorFlow's LeakyReluGrad reads the activation's
    *input*, that BiasAdd, so the rewrite fails ("remapper failed: ... fanout ... LeakyReluGrad exist for
    missing node ... BiasAdd") and grappler drops every remapper rewrite of the train graph. For a slope
    in [0, 1), y = leaky(x) is positive exactly where x is, so LeakyReluGrad fed y instead of x gives the
    same gradient, bit for bit, and leaves the BiasAdd with one reader. Inference runs Keras' own op.
    """

    def call(self, inputs, training=None):
        if not training or not 0.0 <= self.negative_slope < 1.0 or keras.backend.backend() != "tensorflow":
            return super().call(inputs)
        slope = self.negative_slope

        @tf.custom_gradient
        def leaky_relu(x):
            y = tf.nn.leaky_relu(x, alpha=slope)
            return y, lambda dy: tf.raw_ops.LeakyReluGrad(gradients=dy, features=y, alpha=slope)

        return leaky_relu(inputs)


def _same_pads(size: int, stride: int, kernel: int) -> tuple[int, int]:
    """TensorFlow's "same" padding of one spatial dim: the odd pixel goes after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _weight_gradient_by_taps(x, dy, strides: int, padding: str):
    """What Conv2DBackpropFilter returns for the 4x4 conv of `x` with `strides` and `padding` giving `dy`.

    Each of the kernel's 16 taps (kh, kw) reads its own strided window of the padded input, so its
    [Cin, Cout] gradient is one matmul of that window with dy over the N*OH*OW positions. At stride 2,
    space_to_depth folds the 2x2 phase into the channels: 4 matmuls of [N*OH*OW, 4*Cin]^T @ [N*OH*OW, Cout].
    Every weight's gradient is the same single dot product as in the conv kernel (float32 accumulation,
    one rounding to the compute dtype), only summed in another order.
    """
    height, width, cin = x.shape[1:]
    oh, ow, cout = dy.shape[1:]
    if padding == "same":
        pads = [_same_pads(height, strides, 4), _same_pads(width, strides, 4)]
        x = tf.pad(x, [[0, 0], pads[0], pads[1], [0, 0]])
    dy = tf.reshape(dy, [-1, cout])
    if strides == 1:
        taps = [tf.reshape(x[:, i : i + oh, j : j + ow], [-1, cin]) for i in range(4) for j in range(4)]
        return tf.reshape(tf.stack([tf.matmul(t, dy, transpose_a=True) for t in taps]), [4, 4, cin, cout])
    # Stride 2: rows 2*oh + kh for kh = 2*i + di are row oh + i of phase di; keep the 2*(oh + 1) rows used.
    z = tf.nn.space_to_depth(x[:, : 2 * (oh + 1), : 2 * (ow + 1)], 2)  # [N, oh + 1, ow + 1, (di, dj, Cin)]
    taps = [tf.reshape(z[:, i : i + oh, j : j + ow], [-1, 4 * cin]) for i in range(2) for j in range(2)]
    grads = tf.reshape(tf.stack([tf.matmul(t, dy, transpose_a=True) for t in taps]), [2, 2, 2, 2, cin, cout])  # i, j, di, dj
    return tf.reshape(tf.transpose(grads, [0, 2, 1, 3, 4, 5]), [4, 4, cin, cout])  # kh = 2i + di, kw = 2j + dj


# Below this many channels on either side, a tap's [Cin, Cout] matmul is too narrow to beat oneDNN's kernel:
# per layer of G and D at 128 and 256 px (benchmarks/conv_kernels.py), the taps won at every conv with at
# least 128 input and output channels and lost at most of the others (the RGB-side convs by 2-3x).
TAPS_MIN_CHANNELS = 128


def _taps_apply(layer, inputs, transpose: bool) -> bool:
    strides, padding = layer.strides[0], layer.padding
    return (
        keras.backend.backend() == "tensorflow"
        and min(inputs.shape[-1] or 0, layer.filters) >= TAPS_MIN_CHANNELS
        and len(inputs.shape) == 4
        and None not in inputs.shape[1:]
        and layer.data_format == "channels_last"
        and layer.kernel_size == (4, 4)
        and layer.dilation_rate == (1, 1)
        and layer.strides in ((1, 1), (2, 2))
        and (not transpose or (strides == 2 and padding == "same" and layer.output_padding is None))
        and getattr(layer, "groups", 1) == 1
    )


def _bias_and_activation(layer, outputs):
    if layer.use_bias:
        outputs = tf.nn.bias_add(outputs, layer.bias)
    return layer.activation(outputs)


@keras.saving.register_keras_serializable(package="pix2pix_tf")
class TapGradConv2D(layers.Conv2D):
    """Keras' Conv2D whose training-mode weight gradient is computed as matmuls, one per kernel tap.

    On a CPU without AMX, oneDNN computes a bf16 conv's weight gradient with its older direct kernel
    (`jit_bf16` in ONEDNN_VERBOSE), up to 2x slower per FLOP than the same conv's forward pass (a brgemm
    kernel), and much slower at the U-Net's inner 512-channel layers; it also reorders the gradient back
    to TensorFlow's layout on every call. The same sums as oneDNN matmuls (`_weight_gradient_by_taps`), at
    the convs with TAPS_MIN_CHANNELS or more on both sides, are faster there (BENCHMARKS, issue 22). The
    forward pass and the input gradient stay TensorFlow's own kernels; variables, inference and saved files
    are Keras' layer's.
    """

    def call(self, inputs, training=None):
        if not training or not _taps_apply(self, inputs, transpose=False):
            return super().call(inputs)
        strides, padding = self.strides[0], self.padding

        @tf.custom_gradient
        def conv(x, kernel):
            def grad(dy):
                dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=kernel, out_backprop=dy,
                                                    strides=[1, strides, strides, 1], padding=padding.upper())
                return dx, _weight_gradient_by_taps(x, dy, strides, padding)

            return tf.nn.conv2d(x, kernel, strides, padding.upper()), grad

        return _bias_and_activation(self, conv(inputs, tf.convert_to_tensor(self.kernel)))  # read outside: custom_gradient takes tensors


@keras.saving.register_keras_serializable(package="pix2pix_tf")
class TapGradConv2DTranspose(layers.Conv2DTranspose):
    """Keras' Conv2DTranspose with TapGradConv2D's weight gradient (stride 2, "same" padding).

    A transposed conv is the input gradient of the conv that maps its output back to its input, so its
    weight gradient is that conv's weight gradient with the roles of input and output gradient swapped.
    """

    def call(self, inputs, training=None):
        if not training or not _taps_apply(self, inputs, transpose=True):
            return super().call(inputs)
        batch = tf.shape(inputs)[0]
        output_shape = [batch, 2 * inputs.shape[1], 2 * inputs.shape[2], self.filters]

        @tf.custom_gradient
        def deconv(x, kernel):
            def grad(dy):
                return tf.nn.conv2d(dy, kernel, 2, "SAME"), _weight_gradient_by_taps(dy, x, 2, "same")

            return tf.nn.conv2d_transpose(x, kernel, tf.stack(output_shape), 2, "SAME"), grad

        return _bias_and_activation(self, deconv(inputs, tf.convert_to_tensor(self.kernel)))
