"""Compute precision: what `--precision auto` resolves to on this machine, and the Keras dtype policy scope.

Shared by training (which builds G and D under it) and evaluation (which rebuilds the run's generator
the same way, so its scores match the validation figures of training).
"""

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


def weight_gradients_by_taps(precision: str, gpu: tuple[int, int] | None = None, flags: set[str] | None = None, tpu: bool = False) -> bool:
    """Whether G's and D's convs compute their weight gradients tap by tap (core/layers.TapGradConv2D).

    Only where it was measured faster: bf16 on a CPU without AMX, whose oneDNN has no brgemm kernel for a
    bf16 conv's weight gradient (BENCHMARKS, issue 22). GPUs and TPUs, fp32, and AMX CPUs (where oneDNN's
    brgemm kernel may well be the faster one: not measured) keep TensorFlow's own kernel.
    """
    return precision == "bf16" and gpu is None and not tpu and "amx_bf16" not in (cpu_flags() if flags is None else flags)


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
