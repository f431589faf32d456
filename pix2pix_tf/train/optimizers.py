"""The optimizers: the paper's Adam (fused into one kernel per variable) and junyanz's linear decay of its rate."""

from __future__ import annotations

import keras
import tensorflow as tf


def linear_decay(learning_rate: float, epoch: int, epochs: int, decay_epochs: int) -> float:
    """junyanz's `linear` policy: the rate of epoch `epoch` (from 0) of `epochs`, the last `decay_epochs` decaying.

    With C = epochs - decay_epochs constant epochs and N = decay_epochs, epoch e runs at
    `learning_rate * (1 - max(0, e - C + 1) / (N + 1))`: the first decaying epoch at N/(N+1) of the rate,
    the last at 1/(N+1). The rate changes once per epoch, as the reference's (its LambdaLR steps once an
    epoch), so an epoch runs at the rate a PyTorch run of the recipe gives it.
    """
    decayed = min(max(0, epoch - (epochs - decay_epochs) + 1), decay_epochs + 1)
    return learning_rate * (1.0 - decayed / (decay_epochs + 1))


def make_optimizer(lr: float, beta1: float, precision: str = "fp32") -> keras.optimizers.Optimizer:
    """The paper's Adam; under fp16 wrapped in dynamic loss scaling, so small gradients do not flush to zero.

    Args:
        lr: the starting rate (--lr); train.callbacks.LearningRate sets each epoch's.
        beta1: Adam's beta_1.
        precision: "fp32", "bf16" or "fp16".
    """
    optimizer = FusedAdam(learning_rate=lr, beta_1=beta1, beta_2=0.999)
    return keras.optimizers.LossScaleOptimizer(optimizer) if precision == "fp16" else optimizer


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
