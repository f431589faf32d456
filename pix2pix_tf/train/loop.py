"""A training run: data, models, checkpoints and resume around Pix2Pix.fit()."""

from __future__ import annotations

import math
import os

import keras
import tensorflow as tf

from ..config import TrainConfig
from ..core.model import Pix2Pix
from ..core import networks
from ..core.networks import build_discriminator, build_generator
from ..data.check import check_split
from ..data.pairs import make_eval_dataset, make_train_dataset, steps_per_epoch
from ..data.sources import resolve_data_dir
from ..evaluate.metrics import IMAGE_METRIC_NAMES, image_metrics
from ..logs import logger, setup_logging
from ..precision import dtype_policy, gpu_compute_capability, resolve_precision, weight_gradients_by_taps
from ..run import HISTORY_FILE, read_history, write_run_config
from ..tasks import Task, make_task
from . import callbacks as cb
from . import checkpointing, runtime
from .guards import FiniteGuard, StopSignals
from .optimizers import make_optimizer

# Callbacks that write run outputs: in a multi-worker run only the chief keeps them.
CHIEF_ONLY_CALLBACKS = (cb.HistoryWriter, cb.SampleGrid, keras.callbacks.TensorBoard)


def epoch_steps(num_files: int, config: TrainConfig) -> int:
    """The train steps an epoch runs: one pass (or --steps-per-epoch), rounded up to whole --steps-per-execution calls.

    fit() runs every call in full on the endless train stream, the epoch's last one too, so 3 steps at 2 per
    call are 4; counting them here keeps mid-epoch resumes on the steps run.
    """
    steps = steps_per_epoch(num_files, config)
    calls = math.ceil(steps / config.steps_per_execution)
    if calls * config.steps_per_execution != steps:
        logger.info(
            "an epoch runs %d steps: %d rounded up to whole calls of --steps-per-execution %d",
            calls * config.steps_per_execution, steps, config.steps_per_execution,
        )
    return calls * config.steps_per_execution


def build_pix2pix(config: TrainConfig) -> Pix2Pix:
    """G, D and their optimizers as the config says, compiled (precision, XLA, steps per call) for fit().

    The optimizers start at --lr; train.callbacks.LearningRate sets each epoch's rate under --epochs-decay.
    """
    strategy = tf.distribute.get_strategy()  # build_pix2pix runs inside the run's strategy scope
    capability = gpu_compute_capability()
    tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    precision = resolve_precision(config.precision, capability, tpu=tpu)
    jit_compile = runtime.resolve_jit_compile(config.jit_compile, capability is not None, config.deterministic, tf.distribute.has_strategy())
    task = make_task(config)
    taps = weight_gradients_by_taps(precision, capability, tpu=tpu)
    with dtype_policy(precision), networks.kernel_weight_gradients(not taps):
        generator = build_generator(
            config.image_size, task.input_channels, task.output_channels,
            filters=config.generator_filters, depth=config.resolved_generator_depth, norm=config.norm,
        )
        # D sees concat(x, y): Cin + Cout channels (1 + 2 = L + ab for colorization).
        discriminator = build_discriminator(
            config.image_size, task.input_channels, task.output_channels, filters=config.discriminator_filters, norm=config.norm
        )
        model = Pix2Pix(
            generator, discriminator, lambda_l1=config.lambda_l1,
            val_metrics=picture_metrics(task), val_metric_names=IMAGE_METRIC_NAMES,
        )  # fmt: skip
    model.compile(
        make_optimizer(config.lr, config.beta1, precision),
        make_optimizer(config.lr, config.beta1, precision),
        jit_compile=jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    # model.jit_compile, not the request: Keras turns XLA off by itself where it cannot run it (op determinism).
    logger.info("train step: precision %s, XLA %s, %d step(s) per call, conv weight gradients by %s", precision,
                "on" if model.jit_compile else "off", config.steps_per_execution, "taps (matmuls)" if taps else "TensorFlow's kernel")
    return model


def picture_metrics(task: Task):
    """Validation's (x, y, G(x)) -> l1 / psnr / ssim per image, measured on the task's RGB pictures on [0, 255]."""

    def measure(x, y, fake):
        return image_metrics(task.to_rgb(x, fake), task.to_rgb(x, y))

    return measure


def load_splits(config: TrainConfig, data_dir: str):
    """The train and val pipeline sources: file lists from the folder, or the TFDS `pix2pix/NAME` splits."""
    if config.data_source == "tfds":
        from ..data.tfds import load_pix2pix_split  # TFDS loads only when asked for

        return load_pix2pix_split(config, "train"), load_pix2pix_split(config, "val")
    task = make_task(config)
    return task.list_files(data_dir, "train"), task.list_files(data_dir, "val")


def train(config: TrainConfig) -> keras.callbacks.History | None:
    """Trains (or resumes) a pix2pix model and writes every output under `config.output_dir`.

    Returns:
        The History of this invocation's last fit() call, or None when the run had already reached `epochs`.

    Raises:
        UsageError: the data folder is missing or empty, or holds bad files under --on-bad-image fail.
        guards.Interrupted: SIGTERM/SIGINT arrived; the current step was checkpointed first.
        guards.NonFiniteLoss: a loss or weight became NaN/Inf; the last good checkpoint is kept.
    """
    strategy = runtime.make_strategy(config.strategy)  # first: multi-worker/TPU set up the TF runtime
    chief = runtime.is_chief(strategy)  # only the chief writes logs, plots, samples, history, exports
    setup_logging(config.log_file if chief else "")
    runtime.check_batch_size(config.batch_size, strategy)
    out = config.output_dir
    if config.restart and chief:
        checkpointing.archive_previous_run(out)
    task = make_task(config)
    data_dir = resolve_data_dir(config, task)
    train_files, val_files = load_splits(config, data_dir)
    listed = len(train_files) + len(val_files)
    pairs = task.reads_pairs  # photos for colorization may have any shape
    train_files = check_split(train_files, config.image_size, config.on_bad_image, "train", pairs=pairs)
    val_files = check_split(val_files, config.image_size, config.on_bad_image, "val", pairs=pairs)
    skipped = listed - len(train_files) - len(val_files)
    logger.info(
        "pix2pix_tf: %d train / %d val %s from %s; %s task, %d -> %d channels",
        len(train_files), len(val_files), "pairs" if pairs else "photos", data_dir,
        task.name, task.input_channels, task.output_channels,
    )
    logger.info("settings differing from the defaults: %s", config.non_defaults())
    logger.info("strategy: %s", runtime.describe(strategy))

    steps = epoch_steps(len(train_files), config)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    with strategy.scope():  # variables (nets, optimizer slots, epoch) become the strategy's replicated ones
        model = build_pix2pix(config)
        checkpoint = checkpointing.make_checkpoint(model)
    manager = checkpointing.checkpoint_manager(
        checkpoint, os.path.join(out, "checkpoints"), config.keep_checkpoints, strategy, resume=not config.restart
    )
    if manager.latest_checkpoint:
        checkpointing.check_resumable(config, out)
        checkpointing.restore_checkpoint(checkpoint, manager.latest_checkpoint)
        logger.info(
            "resumed from %s (epoch %d, step %d of the next)",
            manager.latest_checkpoint, int(checkpoint.epoch.numpy()), int(checkpoint.epoch_step.numpy()),
        )
    initial_epoch, epoch_step = int(checkpoint.epoch.numpy()), int(checkpoint.epoch_step.numpy())
    if chief:
        write_run_config(out, config)
    if initial_epoch >= config.epochs:
        logger.info("already trained %d of %d epochs: nothing to do (raise --epochs or pass --restart)", initial_epoch, config.epochs)
        return None

    signals = StopSignals()
    resumed_metrics = [v.numpy() for v in checkpointing.metric_variables(model)] if epoch_step else []
    val_ds = make_eval_dataset(val_files, config, example_fn=task.eval_example)
    samples_ds = make_eval_dataset(val_files, config, batch_size=max(config.num_samples, 1), example_fn=task.eval_example)
    sample_inputs, sample_targets = next(iter(samples_ds))
    history_path = os.path.join(out, HISTORY_FILE)
    callbacks = [
        FiniteGuard(),  # first: a NaN step must reach no writer
        cb.Throughput(config.batch_size),
        cb.LearningRate(config.lr, config.epochs, config.epochs_decay),
        cb.HistoryWriter(history_path, os.path.join(out, "plots"), read_history(history_path, initial_epoch)),
        checkpointing.RunCheckpoint(
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
    segments = checkpointing.plan_segments(
        initial_epoch, epoch_step, global_step, steps, config.epochs, config.steps_per_execution
    )
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
