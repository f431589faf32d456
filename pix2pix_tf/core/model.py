"""Pix2Pix as a keras.Model: its own train_step/test_step, so fit() brings progress bars and callbacks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from .losses import METRIC_NAMES, discriminator_loss, generator_loss


class Pix2Pix(keras.Model):
    """Couples a generator G and a conditional discriminator D, with one optimizer each.

    `train_step` updates both nets from one forward pass (simultaneous gradients); the metrics it
    returns (`g_total, g_gan, g_l1, d_total, d_real, d_fake`) are running means over the epoch and
    carry the same names in the progress bar, history.json, TensorBoard and the plots.

    Args:
        generator: G, x -> G(x).
        discriminator: D, [x, y] -> patch logits.
        lambda_l1: weight of the L1 term in G's loss.
        val_metrics: validation only (test_step): (x, y, G(x)) -> {name: per-image values [N]}, for
            figures the paper does not define (the trainer passes L1 / PSNR / SSIM of the task's pictures).
        val_metric_names: the names `val_metrics` returns, fixed here so their trackers exist before
            the first step (checkpoints list the trackers' variables in this order).
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        lambda_l1: float = 100.0,
        val_metrics: Callable[[tf.Tensor, tf.Tensor, tf.Tensor], dict] | None = None,
        val_metric_names: Sequence[str] = (),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.lambda_l1 = lambda_l1
        self.val_metrics = val_metrics
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRIC_NAMES}
        # Running per-image means over the validation split, one tracker per name.
        self.image_trackers = {name: keras.metrics.Mean(name=name) for name in val_metric_names}

    def compile(self, g_optimizer: keras.optimizers.Optimizer, d_optimizer: keras.optimizers.Optimizer, **kwargs):
        # No optimizer of Keras' own (its default would be an unused RMSprop, whose rate Keras' TensorBoard
        # callback would log as `learning_rate`): G's and D's rate reach the logs as `lr` (a callback of the trainer's).
        super().compile(optimizer=None, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        # Built eagerly so checkpoints restore the slots before the first step.
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' symbolic build under a strategy has nothing to build here (G, D and both optimizers are
        # built by now), and skipping it avoids two Keras 3 problems: it strategy.reduce()s a first batch,
        # which MultiWorkerMirroredStrategy rejects (keras-team/keras#20585), and the extra input iterator
        # it opens advances the seeded reshuffle, so the train stream would depend on the strategy.
        return None

    @property
    def metrics(self):
        return list(self.trackers.values()) + list(self.image_trackers.values())

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def _compute_losses(self, x, y, training: bool, fake=None):
        fake = self.generator(x, training=training) if fake is None else fake
        real_logits = self.discriminator([x, y], training=training)
        # D sees the input with the output: it judges the translation, not the photo alone.
        fake_logits = self.discriminator([x, fake], training=training)
        # Per-example [N] losses: a replica's share of the global batch mean is then exact (train_step).
        return generator_loss(fake_logits, fake, y, self.lambda_l1, per_example=True) | discriminator_loss(
            real_logits, fake_logits, per_example=True
        )

    def _update_trackers(self, losses: dict) -> dict:
        # Per-example values weigh every image equally, whichever replica (or partial batch) it came in.
        for name, tracker in self.trackers.items():
            tracker.update_state(losses[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        x, y = data
        g_vars, d_vars = self.generator.trainable_variables, self.discriminator.trainable_variables
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            losses = self._compute_losses(x, y, training=True)
            # fit() runs this step once per replica and the optimizers SUM the replicas' gradients, so
            # each replica takes its share of the GLOBAL batch mean: sum(local losses) / global batch.
            # scale_loss is the identity except under fp16, where a LossScaleOptimizer scales here and
            # unscales in apply().
            g_loss = self.g_optimizer.scale_loss(tf.nn.compute_average_loss(losses["g_total"]))
            d_loss = self.d_optimizer.scale_loss(tf.nn.compute_average_loss(losses["d_total"]))
        self.g_optimizer.apply(g_tape.gradient(g_loss, g_vars), g_vars)
        self.d_optimizer.apply(d_tape.gradient(d_loss, d_vars), d_vars)
        return _for_fit(self._update_trackers(losses))

    def test_step(self, data):
        x, y = data
        fake = self.generator(x, training=False)
        logs = self._update_trackers(self._compute_losses(x, y, training=False, fake=fake))
        if self.val_metrics is not None:
            for name, values in self.val_metrics(x, y, fake).items():
                self.image_trackers[name].update_state(values)
        return _for_fit(logs | {name: tracker.result() for name, tracker in self.image_trackers.items()})


def _for_fit(logs: dict) -> dict:
    """A step's metrics as fit() can reduce them across replicas."""
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        # Keras 3 reduces step outputs across workers with strategy.reduce(MEAN, axis=0), which needs an axis.
        return {name: value[None] for name, value in logs.items()}
    return logs
