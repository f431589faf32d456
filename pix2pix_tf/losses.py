"""The pix2pix objective as pure functions: cGAN + lambda * L1 for G, the halved cGAN loss for D."""

from __future__ import annotations

import keras
from keras import ops


def _bce_with_logits(label: float, logits):
    """Mean binary cross-entropy of every patch logit against a constant label."""
    logits = ops.cast(logits, "float32")
    return ops.mean(keras.losses.binary_crossentropy(ops.full_like(logits, label), logits, from_logits=True))


def generator_loss(fake_logits, generated, target, lambda_l1: float = 100.0) -> dict:
    """G's loss: fool D on every patch, and stay close to the target in L1.

    Args:
        fake_logits: D(x, G(x)) patch logits.
        generated: G(x), in [-1, 1].
        target: y, in [-1, 1].
        lambda_l1: weight of the L1 term (the paper's lambda = 100).

    Returns:
        {"g_total", "g_gan", "g_l1"} scalars, g_total = g_gan + lambda_l1 * g_l1.
    """
    g_gan = _bce_with_logits(1.0, fake_logits)
    g_l1 = ops.mean(ops.abs(ops.cast(target, "float32") - ops.cast(generated, "float32")))
    return {"g_total": g_gan + lambda_l1 * g_l1, "g_gan": g_gan, "g_l1": g_l1}


def discriminator_loss(real_logits, fake_logits) -> dict:
    """D's loss: real pairs -> 1, generated pairs -> 0, halved to slow D relative to G (paper, sec. 3.3).

    Returns:
        {"d_total", "d_real", "d_fake"} scalars, d_total = (d_real + d_fake) / 2.
    """
    d_real = _bce_with_logits(1.0, real_logits)
    d_fake = _bce_with_logits(0.0, fake_logits)
    return {"d_total": 0.5 * (d_real + d_fake), "d_real": d_real, "d_fake": d_fake}


METRIC_NAMES = ("g_total", "g_gan", "g_l1", "d_total", "d_real", "d_fake")
