"""Where and how the train step runs: the tf.distribute strategy (one device, mirrored GPUs, multi-worker
(TF_CONFIG) or TPU) and whether XLA compiles the step (compute precision: pix2pix_tf/precision.py).

fit() does the rest: a model built under `strategy.scope()` remembers its strategy, and fit() then
splits every global batch over the replicas, runs `train_step` once per replica and reduces the
metrics. `Pix2Pix.train_step` averages its losses over the global batch, so the gradients that
tf.distribute sums across replicas do not depend on the replica count.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from ..config import TrainConfig
from ..errors import UsageError

STRATEGIES = TrainConfig.__dataclass_fields__["strategy"].metadata["choices"]  # the --strategy choices
TASK_TYPES = ("chief", "worker")  # MultiWorkerMirroredStrategy has no parameter servers


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Creates the strategy called `name`; call it before any other TensorFlow op.

    Multi-worker and TPU strategies configure the TensorFlow runtime itself, which is only possible
    before it has started.

    Args:
        name: one of STRATEGIES. `auto` is `mirrored` on a machine with more than one GPU, else `default`.

    Raises:
        UsageError: an unknown name, a missing or malformed TF_CONFIG, TF_CONFIG describing a cluster
            while the strategy is not `multi-worker`, or no TPU for `tpu`.
    """
    if name not in STRATEGIES:
        raise UsageError(f"unknown --strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    if name != "multi-worker":
        _reject_cluster_tf_config(name)
    if name == "auto":
        name = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # MirroredStrategy() alone takes every GPU, or only CPU:0 without GPUs; naming the logical
        # CPU devices lets a CPU-only host split into several replicas (as the tests do).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multi-worker":
        check_tf_config(os.environ.get("TF_CONFIG", ""))
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    try:  # tpu: the Colab / TPU VM runtime, or the TPU named by $TPU_NAME
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    except (ValueError, RuntimeError) as err:
        raise UsageError(f"--strategy tpu found no TPU ({err}): use a TPU runtime, or set TPU_NAME") from err
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def check_tf_config(text: str) -> dict:
    """Parses and checks TF_CONFIG for a MultiWorkerMirroredStrategy cluster.

    Returns:
        The parsed {"cluster": {type: ["host:port", ...]}, "task": {"type": ..., "index": ...}}.

    Raises:
        UsageError: TF_CONFIG is unset, not JSON, or its task is not one of its cluster's entries.
    """
    example = '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
    if not text.strip():
        raise UsageError(f"--strategy multi-worker needs TF_CONFIG in the environment of every worker, e.g. {example}")
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config["cluster"], tf_config["task"]
        task_type, index = task["type"], task["index"]
        addresses = [a for t in TASK_TYPES for a in cluster.get(t, [])]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise UsageError(f"TF_CONFIG is not a cluster spec ({err!r}): expected JSON like {example}") from err
    unknown = sorted(set(cluster) - set(TASK_TYPES))
    if unknown:
        raise UsageError(f"TF_CONFIG cluster has {unknown}: multi-worker training takes only 'chief' and 'worker' tasks")
    if task_type not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise UsageError(f"TF_CONFIG task {task} is not in its cluster {cluster}: set task.type and a task.index within it")
    if len(cluster.get("chief", [])) > 1 or not all(isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses):
        raise UsageError(f"TF_CONFIG cluster {cluster} needs 'host:port' addresses and at most one chief")
    return tf_config


def _reject_cluster_tf_config(name: str) -> None:
    """A cluster TF_CONFIG with another strategy would start N independent runs on one output dir."""
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
        tasks = sum(len(cluster.get(t, [])) for t in TASK_TYPES)
    except (ValueError, AttributeError, TypeError):
        tasks = 0
    if tasks > 1:
        raise UsageError(f"TF_CONFIG describes a {tasks}-task cluster but --strategy is {name}: pass --strategy multi-worker, or unset TF_CONFIG")


def describe(strategy: tf.distribute.Strategy) -> str:
    """'MirroredStrategy, 2 replicas' for the start-of-run log line."""
    replicas = strategy.num_replicas_in_sync
    kind = "MultiWorkerMirroredStrategy" if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else type(strategy).__name__
    return f"{kind}, {replicas} replica{'s' * (replicas != 1)}"


def task(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    """(task type, index) of this process in a multi-worker cluster; (None, 0) for a single process."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None, 0
    return strategy.cluster_resolver.task_type, strategy.cluster_resolver.task_id or 0


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's outputs: the only process, the 'chief', or worker 0 without one."""
    task_type, task_id = task(strategy)
    if task_type in (None, "chief"):
        return True
    jobs = strategy.cluster_resolver.cluster_spec().jobs
    return task_type == "worker" and task_id == 0 and "chief" not in jobs


def check_batch_size(batch_size: int, strategy: tf.distribute.Strategy) -> None:
    """Raises UsageError when the global batch does not split into equal per-replica batches."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UsageError(
            f"--batch-size {batch_size} does not split evenly over {replicas} replicas: "
            f"use a multiple of {replicas} (the global batch; each replica gets batch-size / {replicas})"
        )


def resolve_jit_compile(jit_compile: str, on_gpu: bool, deterministic: bool = False, distributed: bool = False) -> bool:
    """`auto` -> XLA on one GPU only: on CPU the XLA-compiled step measured slower than the graph one.

    Deterministic runs stay off XLA, whose op set has fewer deterministic kernels, and so do runs
    under a tf.distribute strategy (Keras' own "auto" makes both calls; TPUs compile regardless).
    """
    if jit_compile == "auto":
        return on_gpu and not deterministic and not distributed
    return jit_compile == "on"
