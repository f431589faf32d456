"""A training run: logging, data, models, checkpoints and resume around Pix2Pix.fit()."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time

import keras
import tensorflow as tf

from . import callbacks as cb
from . import runtime as distribute
from . import checkpointing as resilience
from ..tasks.colorization import write_synthetic_photos
from ..config import TrainConfig, UsageError, read_run_config
from ..data.pairs import make_eval_dataset, make_train_dataset, steps_per_epoch
from ..data.check import check_split
from ..core.model import LinearDecay, Pix2Pix, make_optimizer
from ..core.networks import build_discriminator, build_generator
from .speed import dtype_policy, gpu_compute_capability, resolve_jit_compile, resolve_precision, unwrap_optimizer
from ..data.synthetic import write_synthetic_dataset
from ..tasks.base import make_task

logger = logging.getLogger("pix2pix_tf")

# What a run leaves in OUTPUT_DIR; --restart moves these aside instead of deleting them.
RUN_OUTPUTS = ("checkpoints", "history.json", "plots", "samples", "tensorboard", "config.json")
# Callbacks that write run outputs: in a multi-worker run only the chief keeps them.
CHIEF_ONLY_CALLBACKS = (cb.HistoryWriter, cb.SampleGrid, keras.callbacks.TensorBoard)


def setup_logging(log_file: str) -> None:
    """Console + appended log file, one format for both."""
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    # Per-epoch lines go to the file only: the console already shows them in the progress bar.
    console.addFilter(lambda record: not getattr(record, "file_only", False))
    handlers: list[logging.Handler] = [console]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)


def epoch_steps(num_files: int, config: TrainConfig) -> int:
    """The train steps an epoch runs: one pass (or --steps-per-epoch), rounded up to whole --steps-per-execution calls.

    fit() runs every call in full on the endless train stream, the epoch's last one too, so 3 steps at 2 per
    call are 4; counting them here keeps the --epochs-decay schedule and mid-epoch resumes on the steps run.
    """
    steps = steps_per_epoch(num_files, config)
    calls = math.ceil(steps / config.steps_per_execution)
    if calls * config.steps_per_execution != steps:
        logger.info(
            "an epoch runs %d steps: %d rounded up to whole calls of --steps-per-execution %d",
            calls * config.steps_per_execution, steps, config.steps_per_execution,
        )
    return calls * config.steps_per_execution


def learning_rate(
    config: TrainConfig, steps_per_epoch: int, first_epoch: int = 0, first_step: int = 0
) -> float | LinearDecay:
    """--lr, or its --epochs-decay schedule (gan.LinearDecay) when the epoch length is known.

    A model built without `steps_per_epoch` (to be restored and evaluated, not trained) keeps the constant
    rate; its checkpoint layout is the same either way.
    """
    if not config.epochs_decay or not steps_per_epoch:
        return config.lr
    return LinearDecay(config.lr, steps_per_epoch, config.epochs, config.epochs_decay, first_epoch, first_step)


def build_pix2pix(config: TrainConfig, steps_per_epoch: int = 0) -> Pix2Pix:
    """G, D and their optimizers as the config says, compiled (precision, XLA, steps per call) for fit().

    Args:
        config: the run's settings.
        steps_per_epoch: train steps per epoch, which --epochs-decay needs to tell the epochs apart;
            0 (a model that is only restored) keeps the constant --lr.
    """
    strategy = tf.distribute.get_strategy()  # build_pix2pix runs inside the run's strategy scope
    capability = gpu_compute_capability()
    precision = resolve_precision(config.precision, capability, tpu=isinstance(strategy, tf.distribute.TPUStrategy))
    jit_compile = resolve_jit_compile(config.jit_compile, capability is not None, config.deterministic, tf.distribute.has_strategy())
    task = make_task(config)
    with dtype_policy(precision):
        generator = build_generator(
            config.image_size, task.input_channels, task.output_channels,
            filters=config.generator_filters, depth=config.resolved_generator_depth, norm=config.norm,
        )
        # D sees concat(x, y): Cin + Cout channels (1 + 2 = L + ab for colorization).
        discriminator = build_discriminator(
            config.image_size, task.input_channels, task.output_channels, filters=config.discriminator_filters, norm=config.norm
        )
        model = Pix2Pix(generator, discriminator, lambda_l1=config.lambda_l1, to_rgb=task.to_rgb)
    rate = learning_rate(config, steps_per_epoch)
    model.compile(
        make_optimizer(rate, config.beta1, precision),
        make_optimizer(rate, config.beta1, precision),
        jit_compile=jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    logger.info("train step: precision %s, XLA %s, %d step(s) per call", precision, "on" if jit_compile else "off", config.steps_per_execution)
    return model


def anchor_schedules(
    model: Pix2Pix, config: TrainConfig, steps_per_epoch: int, first: resilience.Segment, mid_epoch: bool
) -> None:
    """Anchors each optimizer's --epochs-decay schedule at the next epoch boundary of a (resumed) run.

    The schedule counts epochs from the optimizer's restored step counter; anchoring it where this run's
    epochs actually start keeps a mid-epoch resume on the uninterrupted run's sequence even when
    --steps-per-epoch changed since, or when a loss-scaling optimizer skipped (and did not count) steps before.
    """
    for optimizer in (unwrap_optimizer(model.g_optimizer), unwrap_optimizer(model.d_optimizer)):
        start = int(optimizer.iterations.numpy())
        # Mid-epoch, the first fit() call finishes epoch `first.initial_epoch` in `first.steps` steps.
        anchor = (first.initial_epoch + 1, start + first.steps) if mid_epoch else (first.initial_epoch, start)
        optimizer.learning_rate = learning_rate(config, steps_per_epoch, *anchor)


def make_checkpoint(model: Pix2Pix) -> tf.train.Checkpoint:
    """Everything a resumed run needs: both nets, both optimizers' slots and step counters, the epoch."""
    return tf.train.Checkpoint(
        generator=model.generator,
        discriminator=model.discriminator,
        g_optimizer=unwrap_optimizer(model.g_optimizer),
        d_optimizer=unwrap_optimizer(model.d_optimizer),
        epoch=tf.Variable(0, dtype=tf.int64, name="epoch"),  # completed epochs
        step=tf.Variable(0, dtype=tf.int64, name="step"),  # train steps run (batches consumed)
        epoch_step=tf.Variable(0, dtype=tf.int64, name="epoch_step"),  # steps done in the epoch after them
        rng=resilience.rng_state_variables(model.generator, model.discriminator),  # dropout streams
        metrics=resilience.metric_variables(model),  # running epoch means, for a mid-epoch resume
    )


def synthetic_data_dir(config: TrainConfig, output_dir: str) -> str:
    """Where --dataset synthetic is drawn: photos for colorization, pairs otherwise."""
    return os.path.join(output_dir, "data", "synthetic_photos" if config.task == "colorization" else "synthetic")


def resolve_data_dir(config: TrainConfig) -> str:
    if config.dataset == "synthetic":
        root = synthetic_data_dir(config, config.output_dir)
        photos = config.task == "colorization"
        logger.info("writing %d synthetic %s to %s", config.synthetic_pairs, "photos" if photos else "train pairs", root)
        write = write_synthetic_photos if photos else write_synthetic_dataset
        return write(root, config.synthetic_pairs, size=max(config.image_size), seed=config.seed)
    if config.dataset:  # a public pix2pix dataset: downloaded, checked and extracted once into --data-root
        from ..data.sources import fetch_dataset

        return fetch_dataset(config.dataset, config.data_root, config.allow_unverified_download)
    return config.data_dir


def load_splits(config: TrainConfig, data_dir: str):
    """The train and val pipeline sources: file lists from the folder, or the TFDS `pix2pix/NAME` splits."""
    if config.data_source == "tfds":
        from .tfds_pix2pix import load_pix2pix_split  # TFDS loads only when asked for

        return load_pix2pix_split(config, "train"), load_pix2pix_split(config, "val")
    task = make_task(config)
    return task.list_files(data_dir, "train"), task.list_files(data_dir, "val")


def archive_previous_run(output_dir: str) -> None:
    """--restart: move the old run's outputs to OUTPUT_DIR/previous/<time>/ so nothing is lost."""
    present = [name for name in RUN_OUTPUTS if os.path.exists(os.path.join(output_dir, name))]
    if not present:
        return
    target = os.path.join(output_dir, "previous", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(target, exist_ok=True)
    for name in present:
        shutil.move(os.path.join(output_dir, name), os.path.join(target, name))
    logger.info("--restart: moved the previous run's %s to %s", ", ".join(present), target)


def network_shape(config: TrainConfig) -> dict:
    """What a checkpoint's variables depend on: a run resumes only with the same values."""
    return {
        "task": config.task,
        "input-channels": config.resolved_input_channels,
        "output-channels": config.resolved_output_channels,
        "generator-filters": config.generator_filters,
        "discriminator-filters": config.discriminator_filters,
        "generator-depth": config.resolved_generator_depth,
        "norm": config.norm,
    }


def check_resumable(config: TrainConfig, saved_config_path: str) -> None:
    """Stops with the fix, instead of a shape error deep in restore, when OUTPUT_DIR holds other networks.

    Raises:
        UsageError: the run in OUTPUT_DIR was trained with another task, channel count or width.
    """
    if not os.path.exists(saved_config_path):
        return
    try:
        previous = network_shape(read_run_config(saved_config_path))
    except (UsageError, TypeError):
        return  # a config.json from another version: let restore itself judge
    current = network_shape(config)
    differ = [f"--{k} {previous[k]} (now {current[k]})" for k in current if previous[k] != current[k]]
    if differ:
        raise UsageError(
            f"{config.output_dir} holds a run trained with {', '.join(differ)}: its checkpoints do not fit; "
            "pass --restart (the old run is kept aside) or another --output-dir"
        )


def load_history(path: str, completed_epochs: int) -> list[dict]:
    """history.json rows up to the restored epoch (rows past it belong to an epoch that was not checkpointed)."""
    if completed_epochs == 0 or not os.path.exists(path):
        return []
    with open(path) as f:
        return [row for row in json.load(f) if row["epoch"] <= completed_epochs]


def train(config: TrainConfig) -> keras.callbacks.History | None:
    """Trains (or resumes) a pix2pix model and writes every output under `config.output_dir`.

    Returns:
        The History of this invocation's last fit() call, or None when the run had already reached `epochs`.

    Raises:
        UsageError: the data folder is missing or empty, or holds bad files under --on-bad-image fail.
        resilience.Interrupted: SIGTERM/SIGINT arrived; the current step was checkpointed first.
        resilience.NonFiniteLoss: a loss or weight became NaN/Inf; the last good checkpoint is kept.
    """
    strategy = distribute.make_strategy(config.strategy)  # first: multi-worker/TPU set up the TF runtime
    chief = distribute.is_chief(strategy)  # only the chief writes logs, plots, samples, history, exports
    setup_logging(config.log_file if chief else "")
    distribute.check_batch_size(config.batch_size, strategy)
    out = config.output_dir
    if config.restart and chief:
        archive_previous_run(out)
    data_dir = resolve_data_dir(config)
    task = make_task(config)
    train_files, val_files = load_splits(config, data_dir)
    listed = len(train_files) + len(val_files)
    pairs = task.name != "colorization"  # photos for colorization may have any shape
    train_files = check_split(train_files, config.image_size, config.on_bad_image, "train", pairs=pairs)
    val_files = check_split(val_files, config.image_size, config.on_bad_image, "val", pairs=pairs)
    skipped = listed - len(train_files) - len(val_files)
    logger.info(
        "pix2pix_tf: %d train / %d val %s from %s; %s task, %d -> %d channels",
        len(train_files), len(val_files), "pairs" if pairs else "photos", data_dir,
        task.name, task.input_channels, task.output_channels,
    )
    logger.info("settings differing from the defaults: %s", config.non_defaults())
    logger.info("strategy: %s", distribute.describe(strategy))

    steps = epoch_steps(len(train_files), config)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    with strategy.scope():  # variables (nets, optimizer slots, epoch) become the strategy's replicated ones
        model = build_pix2pix(config, steps)
        checkpoint = make_checkpoint(model)
    manager = distribute.checkpoint_manager(
        checkpoint, os.path.join(out, "checkpoints"), config.keep_checkpoints, strategy, resume=not config.restart
    )
    if manager.latest_checkpoint:
        check_resumable(config, os.path.join(out, "config.json"))
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logger.info(
            "resumed from %s (epoch %d, step %d of the next)",
            manager.latest_checkpoint, int(checkpoint.epoch.numpy()), int(checkpoint.epoch_step.numpy()),
        )
    initial_epoch, epoch_step = int(checkpoint.epoch.numpy()), int(checkpoint.epoch_step.numpy())
    if chief:
        config.save(os.path.join(out, "config.json"))
    if initial_epoch >= config.epochs:
        logger.info("already trained %d of %d epochs: nothing to do (raise --epochs or pass --restart)", initial_epoch, config.epochs)
        return None

    signals = resilience.StopSignals()
    resumed_metrics = [v.numpy() for v in resilience.metric_variables(model)] if epoch_step else []
    val_ds = make_eval_dataset(val_files, config, example_fn=task.eval_example)
    samples_ds = make_eval_dataset(val_files, config, batch_size=max(config.num_samples, 1), example_fn=task.eval_example)
    sample_inputs, sample_targets = next(iter(samples_ds))
    history_path = os.path.join(out, "history.json")
    callbacks = [
        resilience.FiniteGuard(),  # first: a NaN step must reach no writer
        cb.Throughput(config.batch_size),
        cb.LearningRate(),
        cb.HistoryWriter(history_path, os.path.join(out, "plots"), load_history(history_path, initial_epoch)),
        resilience.RunCheckpoint(
            manager, checkpoint, config.checkpoint_every, signals, epoch_step, resumed_metrics
        ),
        keras.callbacks.TensorBoard(os.path.join(out, "tensorboard"), write_graph=False),
        cb.EpochLogger(logger, config.epochs),
    ]
    if not chief:  # workers train and checkpoint (every worker must join a save) but write no outputs
        callbacks = [c for c in callbacks if not isinstance(c, CHIEF_ONLY_CALLBACKS)]
    if config.num_samples and chief:
        samples_dir, tensorboard_dir = os.path.join(out, "samples"), os.path.join(out, "tensorboard")
        callbacks.insert(2, cb.SampleGrid(sample_inputs, sample_targets, samples_dir, tensorboard_dir, task.to_rgb))
    logger.info(
        "training epochs %d..%d, %d steps of %d images each, at %dx%d",
        initial_epoch + 1, config.epochs, steps, config.batch_size, *config.image_size,
    )
    # Checkpoints from before the step counter existed: the optimizer's iterations then counted the steps.
    global_step = int(checkpoint.step.numpy()) or int(model.g_optimizer.iterations.numpy())
    checkpoint.step.assign(global_step)
    segments = resilience.plan_segments(initial_epoch, epoch_step, global_step, steps, config.epochs)
    if config.epochs_decay:
        anchor_schedules(model, config, steps, segments[0], mid_epoch=bool(epoch_step))
    with signals:
        for segment in segments:
            history = model.fit(
                make_train_dataset(train_files, config, start_step=segment.start_step, example_fn=task.train_example),
                epochs=segment.epochs,
                initial_epoch=segment.initial_epoch,
                steps_per_epoch=segment.steps,
                validation_data=val_ds,
                validation_steps=config.val_steps or None,
                callbacks=callbacks,
                shuffle=False,  # the dataset shuffles itself, seeded
                verbose=1,
            )
    logger.info("done: %d epochs; outputs in %s", config.epochs, out)
    if skipped:
        logger.warning("%d bad image files were skipped (named at start-up)", skipped)
    return history
