"""The optimizers: the paper's Adam (fused into one kernel per variable) and junyanz's linear decay of its rate."""

from __future__ import annotations

import keras
import tensorflow as tf

from ..config import TrainConfig


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
    (train.loop.anchor_schedules), so that a changed --steps-per-epoch, or steps that a loss-scaling optimizer
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


def learning_rate(
    config: TrainConfig, steps_per_epoch: int, first_epoch: int = 0, first_step: int = 0
) -> float | LinearDecay:
    """--lr, or its --epochs-decay schedule (LinearDecay) when the epoch length is known.

    A model built without `steps_per_epoch` (to be restored and evaluated, not trained) keeps the constant
    rate; its checkpoint layout is the same either way.
    """
    if not config.epochs_decay or not steps_per_epoch:
        return config.lr
    return LinearDecay(config.lr, steps_per_epoch, config.epochs, config.epochs_decay, first_epoch, first_step)


def unwrap_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The Adam inside a LossScaleOptimizer (checkpoints save it, so runs resume across precisions)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


@keras.saving.register_keras_serializable(package="pix2pix_tf")
class FusedAdam(keras.optimizers.Adam):
    """Adam whose per-variable update is one fused kernel (`ResourceApplyAdam`) instead of ~10 elementwise ops.

    Same update rule as Keras' Adam (epsilon added to sqrt(v), bias correction folded into the step
    size), same slot variables, so checkpoints are interchangeable. At batch 1 the 57M-parameter
    update is about half of a CPU train step, and each elementwise op is a full pass over memory.
    Falls back to Keras' update under a distribution strategy (its variables are not plain handles)
    and for AMSGrad, which the kernel does not implement. The rate arrives as `update_step`'s argument,
    already read from a schedule when the optimizer has one.
    """

    def __init__(self, learning_rate=0.001, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            # Keras keeps a constant rate in the optimizer's 2nd variable and a schedule in none, while a
            # checkpoint numbers an optimizer's variables by position: this stand-in (the rate at step 0,
            # never read) keeps the Adam slots at the same numbers, so a run resumes from a checkpoint
            # written with or without --epochs-decay instead of restoring m into v.
            self.add_variable(
                (), initializer=keras.initializers.Constant(float(keras.ops.convert_to_numpy(learning_rate(0)))),
                aggregation="only_first_replica", name="learning_rate",
            )

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or tf.distribute.has_strategy() or keras.backend.backend() != "tensorflow":
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )


def _handle(variable) -> tf.Tensor:
    """The resource handle of a Keras or tf.Variable."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle
