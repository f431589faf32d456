"""Loss values on hand-computed inputs."""

import math

import numpy as np
import pytest

from pix2pix_tf.core.losses import discriminator_loss, generator_loss


def test_zero_logits_give_log2_everywhere():
    z = np.zeros((2, 30, 30, 1), "float32")
    d = discriminator_loss(z, z)
    assert float(d["d_real"]) == pytest.approx(math.log(2), rel=1e-6)
    assert float(d["d_total"]) == pytest.approx(math.log(2), rel=1e-6)  # halved sum of two log 2 terms


def test_generator_loss_closed_form():
    logits = np.array([[[[2.0]], [[-1.0]]]], "float32")  # [1, 2, 1, 1]
    generated = np.zeros((1, 2, 2, 3), "float32")
    target = np.full((1, 2, 2, 3), 0.5, "float32")
    g = generator_loss(logits, generated, target, lambda_l1=100.0)
    gan = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0))) / 2  # BCE(sigmoid(l), 1) = log(1 + e^-l)
    assert float(g["g_gan"]) == pytest.approx(gan, rel=1e-5)
    assert float(g["g_l1"]) == pytest.approx(0.5, rel=1e-6)
    assert float(g["g_total"]) == pytest.approx(gan + 50.0, rel=1e-5)


def test_discriminator_loss_real_and_fake_terms():
    real = np.full((1, 2, 2, 1), 3.0, "float32")
    fake = np.full((1, 2, 2, 1), 1.0, "float32")
    d = discriminator_loss(real, fake)
    d_real, d_fake = math.log1p(math.exp(-3.0)), math.log1p(math.exp(1.0))  # BCE(., 0) = log(1 + e^l)
    assert float(d["d_real"]) == pytest.approx(d_real, rel=1e-5)
    assert float(d["d_fake"]) == pytest.approx(d_fake, rel=1e-5)
    assert float(d["d_total"]) == pytest.approx(0.5 * (d_real + d_fake), rel=1e-5)
