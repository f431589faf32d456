"""The fast path: what `--precision auto` / `--jit-compile auto` resolve to, the dtype policy scope, and a fused Adam."""

from __future__ import annotations

import contextlib
import os

import keras
import tensorflow as tf

# Keras dtype policy per --precision value; variables stay float32 under the mixed ones.
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
# CPU flags (as /proc/cpuinfo spells them) with native bfloat16 matmul/conv units.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The feature flags of the first CPU listed in /proc/cpuinfo; empty where that file is absent."""
    if not os.path.exists(cpuinfo):
        return set()
    with open(cpuinfo) as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def gpu_compute_capability() -> tuple[int, int] | None:
    """(major, minor) of the first visible GPU, or None on a CPU-only machine."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    return tuple(capability) if capability else (0, 0)


def resolve_precision(
    precision: str, gpu: tuple[int, int] | None = None, flags: set[str] | None = None, tpu: bool = False
) -> str:
    """`auto` -> bf16 on TPUs, Ampere+ GPUs and CPUs with AVX512-BF16/AMX, fp16 on Volta/Turing, else fp32.

    Args:
        precision: "auto", "fp32", "bf16" or "fp16".
        gpu: the GPU's compute capability (None for CPU-only), as `gpu_compute_capability()` returns.
        flags: CPU feature flags, as `cpu_flags()` returns.
        tpu: training runs under a TPUStrategy.
    """
    if precision != "auto":
        return precision
    if tpu:
        return "bf16"
    if gpu is not None:
        # bf16 needs compute capability 8.0 (A100/H100); fp16 tensor cores arrived with 7.0 (V100).
        return "bf16" if gpu >= (8, 0) else "fp16" if gpu >= (7, 0) else "fp32"
    return "bf16" if set(BF16_CPU_FLAGS) & (cpu_flags() if flags is None else flags) else "fp32"


def resolve_jit_compile(jit_compile: str, on_gpu: bool, deterministic: bool = False, distributed: bool = False) -> bool:
    """`auto` -> XLA on one GPU only: on CPU the XLA-compiled step measured slower than the graph one.

    Deterministic runs stay off XLA, whose op set has fewer deterministic kernels, and so do runs
    under a tf.distribute strategy (Keras' own "auto" makes both calls; TPUs compile regardless).
    """
    if jit_compile == "auto":
        return on_gpu and not deterministic and not distributed
    return jit_compile == "on"


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Sets the global Keras dtype policy for `precision` ("fp32"/"bf16"/"fp16") and restores the old one.

    Layers take their policy when they are built, so models built inside the block keep it after
    the block ends, while models built elsewhere in the same process are not affected.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_dtype_policy(POLICIES[precision])
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


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
