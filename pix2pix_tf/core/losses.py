"""The pix2pix objective as pure functions: cGAN + lambda * L1 for G, the halved cGAN loss for D."""

from __future__ import annotations

import keras
from keras import ops


def _per_example_mean(values):
    """Mean over every axis but the batch axis: one value per example, [N]."""
    return ops.mean(values, axis=tuple(range(1, len(values.shape))))


def _bce_with_logits(label: float, logits):
    """Per-example mean binary cross-entropy of every patch logit against a constant label."""
    logits = ops.cast(logits, "float32")
    return _per_example_mean(keras.losses.binary_crossentropy(ops.full_like(logits, label), logits, from_logits=True))


def _reduce(losses: dict, per_example: bool) -> dict:
    return losses if per_example else {name: ops.mean(value) for name, value in losses.items()}


def generator_loss(fake_logits, generated, target, lambda_l1: float = 100.0, per_example: bool = False) -> dict:
    """G's loss: fool D on every patch, and stay close to the target in L1.

    Args:
        fake_logits: D(x, G(x)) patch logits.
        generated: G(x), in [-1, 1].
        target: y, in [-1, 1].
        lambda_l1: weight of the L1 term (the paper's lambda = 100).
        per_example: return [N] per-example losses (for tf.nn.compute_average_loss) instead of batch means.

    Returns:
        {"g_total", "g_gan", "g_l1"} scalars ([N] with per_example), g_total = g_gan + lambda_l1 * g_l1.
    """
    g_gan = _bce_with_logits(1.0, fake_logits)
    g_l1 = _per_example_mean(ops.abs(ops.cast(target, "float32") - ops.cast(generated, "float32")))
    return _reduce({"g_total": g_gan + lambda_l1 * g_l1, "g_gan": g_gan, "g_l1": g_l1}, per_example)


def discriminator_loss(real_logits, fake_logits, per_example: bool = False) -> dict:
    """D's loss: real pairs -> 1, generated pairs -> 0, halved to slow D relative to G (paper, sec. 3.3).

    Returns:
        {"d_total", "d_real", "d_fake"} scalars ([N] with per_example), d_total = (d_real + d_fake) / 2.
    """
    d_real = _bce_with_logits(1.0, real_logits)
    d_fake = _bce_with_logits(0.0, fake_logits)
    return _reduce({"d_total": 0.5 * (d_real + d_fake), "d_real": d_real, "d_fake": d_fake}, per_example)


METRIC_NAMES = ("g_total", "g_gan", "g_l1", "d_total", "d_real", "d_fake")
