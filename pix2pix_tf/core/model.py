"""Pix2Pix as a keras.Model: its own train_step/test_step, so fit() brings progress bars and callbacks."""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from .losses import METRIC_NAMES, discriminator_loss, generator_loss
from ..evaluate.metrics import IMAGE_METRIC_NAMES, image_metrics
from ..train.speed import FusedAdam
from ..tasks.base import paired_to_rgb


class Pix2Pix(keras.Model):
    """Couples a generator G and a conditional discriminator D, with one optimizer each.

    `train_step` updates both nets from one forward pass (simultaneous gradients); the metrics it
    returns (`g_total, g_gan, g_l1, d_total, d_real, d_fake`) are running means over the epoch and
    carry the same names in the progress bar, history.json, TensorBoard and the plots.
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        lambda_l1: float = 100.0,
        to_rgb: Callable[..., tf.Tensor] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.lambda_l1 = lambda_l1
        # The task's (x, y) -> RGB in [-1, 1], for samples and image metrics (tasks.Task.to_rgb).
        self.to_rgb = to_rgb or paired_to_rgb
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRIC_NAMES}
        # Validation only (test_step): l1 / psnr / ssim of G(x) vs y on [0, 255], per-image means.
        self.image_trackers = {name: keras.metrics.Mean(name=name) for name in IMAGE_METRIC_NAMES}

    def compile(self, g_optimizer: keras.optimizers.Optimizer, d_optimizer: keras.optimizers.Optimizer, **kwargs):
        # No optimizer of Keras' own (its default would be an unused RMSprop, whose rate Keras' TensorBoard
        # callback would log as `learning_rate`): G's and D's rate reach the logs as `lr` (callbacks.LearningRate).
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
        for name, values in image_metrics(self.to_rgb(x, fake), self.to_rgb(x, y)).items():
            self.image_trackers[name].update_state(values)
        return _for_fit(logs | {name: tracker.result() for name, tracker in self.image_trackers.items()})


def _for_fit(logs: dict) -> dict:
    """A step's metrics as fit() can reduce them across replicas."""
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        # Keras 3 reduces step outputs across workers with strategy.reduce(MEAN, axis=0), which needs an axis.
        return {name: value[None] for name, value in logs.items()}
    return logs


@keras.saving.register_keras_serializable(package="pix2pix_tf")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """junyanz's `linear` policy: `learning_rate` for `epochs - decay_epochs` epochs, then linearly down to zero.

    With C = epochs - decay_epochs constant epochs and N = decay_epochs, epoch e (counted from 0) runs at
    `learning_rate * (1 - max(0, e - C + 1) / (N + 1))`: the first decaying epoch at N/(N+1) of the rate,
    the last at 1/(N+1), zero just past the end.

    The rate changes once per epoch, as the reference's (its LambdaLR steps once an epoch), rather than every
    step: the same epoch then runs at the same rate as a PyTorch run of the recipe, and the `lr` that history.json
    records for an epoch is the rate all of its steps used.

    Keras calls the schedule with the optimizer's own step counter (`iterations`), which the checkpoint
    restores, so a resumed run, mid-epoch too, continues the sequence where it stopped. Epoch `first_epoch`
    starts at step `first_step` (0, 0 from scratch); a resumed run anchors them at its next epoch boundary
    (training.anchor_schedules), so that a changed --steps-per-epoch, or steps that a loss-scaling optimizer
    skipped (and did not count) before the resume, do not shift the epochs.

    Args:
        learning_rate: the constant rate before the decay (--lr).
        steps_per_epoch: train steps in an epoch (the --steps-per-epoch cap included).
        epochs: the run's total epochs (--epochs).
        decay_epochs: the last epochs of `epochs` that decay (--epochs-decay), 0 to `epochs`.
        first_epoch: the epoch that starts at step `first_step`.
        first_step: the optimizer step at which `first_epoch` starts.
    """

    def __init__(self, learning_rate, steps_per_epoch, epochs, decay_epochs, first_epoch=0, first_step=0):
        self.learning_rate = float(learning_rate)
        self.steps_per_epoch, self.epochs, self.decay_epochs = int(steps_per_epoch), int(epochs), int(decay_epochs)
        self.first_epoch, self.first_step = int(first_epoch), int(first_step)

    def __call__(self, step):
        step = keras.ops.cast(step, "int64")
        epoch = self.first_epoch + keras.ops.floor_divide(step - self.first_step, self.steps_per_epoch)
        decayed = keras.ops.clip(epoch - (self.epochs - self.decay_epochs) + 1, 0, self.decay_epochs + 1)
        return self.learning_rate * (1.0 - keras.ops.cast(decayed, "float32") / (self.decay_epochs + 1))

    def get_config(self) -> dict:
        return {
            "learning_rate": self.learning_rate, "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs,
            "decay_epochs": self.decay_epochs, "first_epoch": self.first_epoch, "first_step": self.first_step,
        }


def make_optimizer(
    lr: float | keras.optimizers.schedules.LearningRateSchedule, beta1: float, precision: str = "fp32"
) -> keras.optimizers.Optimizer:
    """The paper's Adam; under fp16 wrapped in dynamic loss scaling, so small gradients do not flush to zero.

    Args:
        lr: a constant rate or a schedule (LinearDecay for --epochs-decay).
        beta1: Adam's beta_1.
        precision: "fp32", "bf16" or "fp16".
    """
    optimizer = FusedAdam(learning_rate=lr, beta_1=beta1, beta_2=0.999)
    return keras.optimizers.LossScaleOptimizer(optimizer) if precision == "fp16" else optimizer
