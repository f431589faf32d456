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
