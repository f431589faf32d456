"""Checkpoints and resume: what a checkpoint holds, who writes it, when it is saved, and how a run picks up again.

The object names of `make_checkpoint` (generator, discriminator, g_optimizer, ...) are the file format:
pix2pix_tf/run.py reads the generator back by the same name.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from ..config import TrainConfig
from ..core.model import Pix2Pix
from ..errors import UsageError
from ..run import CONFIG_FILE, RUN_OUTPUTS, read_run_config
from .guards import Interrupted, NonFiniteLoss, StopSignals
from .optimizers import unwrap_optimizer
from .runtime import is_chief, task

logger = logging.getLogger("pix2pix_tf")


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
        rng=rng_state_variables(model.generator, model.discriminator),  # dropout streams
        metrics=metric_variables(model),  # running epoch means, for a mid-epoch resume
        loss_scale=loss_scale_variables(model),  # fp16 only; empty otherwise
    )


def loss_scale_variables(model: Pix2Pix) -> list[keras.Variable]:
    """fp16's dynamic loss scales and growth counters (G's, then D's): without them a resumed run would
    start again from the initial scale and skip the steps that find the scale again."""
    optimizers = (model.g_optimizer, model.d_optimizer)
    scaled = [opt for opt in optimizers if isinstance(opt, keras.optimizers.LossScaleOptimizer)]
    return [v for opt in scaled for v in (opt.dynamic_scale, opt.step_counter)]


def restore_checkpoint(checkpoint: tf.train.Checkpoint, path: str) -> None:
    """Restores a run's checkpoint, insisting that every net, slot and counter is in the file.

    The one exception: a checkpoint written under bf16/fp32 (or before loss scales were saved) has no
    loss scale for an fp16 run to restore, which then starts from the initial scale.
    """
    saved = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
    if checkpoint.loss_scale and "loss_scale" not in saved:
        parts = tf.train.TrackableView(checkpoint).children(checkpoint)
        # The same objects without the loss scales (and the save counter, which the run's numbering ignores).
        checkpoint = tf.train.Checkpoint(**{k: v for k, v in parts.items() if k not in ("loss_scale", "save_counter")})
    checkpoint.restore(path).assert_existing_objects_matched()


def rng_state_variables(*models: keras.Model) -> list[keras.Variable]:
    """The states of the models' SeedGenerators (dropout masks).

    tf.train.Checkpoint does not track them through the Keras layers, yet a bit-identical resume
    needs the dropout stream to continue where it stopped, so the checkpoint lists them itself.
    """
    return [v for model in models for v in model.variables if v.path.endswith("seed_generator_state")]


def metric_variables(model: keras.Model) -> list[keras.Variable]:
    """The running-mean states of the model's metrics, so a mid-epoch resume reports whole-epoch means."""
    return [v for metric in model.metrics for v in metric.variables]


@dataclasses.dataclass(frozen=True)
class Segment:
    """One fit() call: epochs [initial_epoch, epochs) of `steps` steps, reading the stream from `start_step`."""

    initial_epoch: int
    epochs: int
    steps: int
    start_step: int


def plan_segments(
    completed_epochs: int, epoch_step: int, global_step: int, steps: int, epochs: int, steps_per_execution: int = 1
) -> list[Segment]:
    """fit() calls that finish an interrupted epoch, then run the remaining whole epochs.

    Keras' fit() gives every epoch the same length, so a resume from `epoch_step` steps into an
    epoch first runs that epoch's remaining steps alone; the train stream skips the `global_step`
    batches already consumed, so the data continues exactly where it stopped. fit() runs each call of
    `steps_per_execution` steps in full, so the remainder is rounded up to whole calls: a run interrupted
    under another --steps-per-execution then finishes that epoch a few steps long instead of consuming
    batches it does not count (which the next segment would read again).
    """
    segments, start = [], global_step
    if epoch_step and completed_epochs < epochs:
        remaining = max(steps - epoch_step, 1)  # >= 1 even if --steps-per-epoch shrank meanwhile
        remaining = -(-remaining // steps_per_execution) * steps_per_execution
        segments.append(Segment(completed_epochs, completed_epochs + 1, remaining, start))
        completed_epochs, start = completed_epochs + 1, start + remaining
    if completed_epochs < epochs:
        segments.append(Segment(completed_epochs, epochs, steps, start))
    return segments


# Not keras.callbacks.BackupAndRestore (the segmenter's choice): it restores the weights and the epoch number
# alone (the batch it records is not used), so an interrupted epoch would start over and read its batches again;
# it cannot save on SIGTERM; and its one .weights.h5 per fit() is not a tf.train.Checkpoint kept by step, from
# which run.restore_generator reads G by name and every worker of a multi-worker run saves.
class RunCheckpoint(keras.callbacks.Callback):
    """Saves the run's tf.train.Checkpoint every `every` steps, at each epoch end, and on a stop signal.

    The checkpoint's `step` counts the train steps run (batches consumed) and numbers the
    checkpoints; `epoch` counts completed epochs and `epoch_step` the steps done in the current one,
    which is what `plan_segments` needs to resume mid-epoch. (The optimizers' `iterations` is not
    used: a loss-scaling optimizer does not count the steps it skips.) Weights are checked finite
    before every save, so a diverged step never overwrites the last good checkpoint.
    """

    def __init__(
        self,
        manager: tf.train.CheckpointManager,
        state: tf.train.Checkpoint,
        every: int,
        signals: StopSignals,
        resumed_epoch_step: int = 0,
        resumed_metrics: Sequence[np.ndarray] = (),
    ):
        super().__init__()
        self.manager, self.state, self.every, self.signals = manager, state, every, signals
        self.pending_offset, self.resumed_metrics = resumed_epoch_step, list(resumed_metrics)

    def on_train_begin(self, logs=None):
        self.epoch_steps = self.params["steps"]  # this fit() call's epoch length

    def on_epoch_begin(self, epoch, logs=None):
        # fit() has just reset the metrics; a resumed epoch continues its running means instead.
        if self.pending_offset and self.resumed_metrics:
            for variable, value in zip(metric_variables(self.model), self.resumed_metrics):
                variable.assign(value)
        self.step = self.last_saved = self.fit_epoch_start = int(self.state.step.numpy())
        self.epoch_start = self.fit_epoch_start - self.pending_offset
        self.pending_offset, self.resumed_metrics = 0, []

    def on_train_batch_end(self, batch, logs=None):
        self.step = self.fit_epoch_start + batch + 1
        if batch + 1 >= self.epoch_steps:
            return  # the epoch's last step: on_epoch_end saves (and stops) right after validation
        if self.signals.received is not None or (self.every and self.step - self.last_saved >= self.every):
            self.state.epoch_step.assign(self.step - self.epoch_start)
            self._save()
        if self.signals.received is not None:
            raise Interrupted(self.signals.received, self.step, self.manager.latest_checkpoint)

    def on_epoch_end(self, epoch, logs=None):
        self.state.epoch.assign(epoch + 1)
        self.state.epoch_step.assign(0)
        self._save()
        if self.signals.received is not None:
            raise Interrupted(self.signals.received, self.step, self.manager.latest_checkpoint)

    def _save(self) -> None:
        step = self.step
        weights = self.model.generator.trainable_variables + self.model.discriminator.trainable_variables
        if not all(bool(tf.reduce_all(tf.math.is_finite(w))) for w in weights):
            raise NonFiniteLoss(
                f"weights became NaN/Inf by step {step}: training stopped without saving; the last good "
                f"checkpoint ({self.manager.latest_checkpoint}) is kept. Lower --lr or check the data"
            )
        self.state.step.assign(step)
        self.manager.save(checkpoint_number=step)
        self.last_saved = step


class WorkerCheckpointManager(tf.train.CheckpointManager):
    """A non-chief worker's checkpoints: saved, because saving is a collective every worker joins, but
    into a private temporary directory that is deleted again; resumes read the chief's directory."""

    def __init__(self, checkpoint: tf.train.Checkpoint, chief_directory: str, temp_directory: str, resume: bool = True):
        super().__init__(checkpoint, temp_directory, max_to_keep=1)
        self.chief_directory, self.resume = chief_directory, resume

    @property
    def latest_checkpoint(self) -> str | None:
        return tf.train.latest_checkpoint(self.chief_directory) if self.resume else None

    def save(self, checkpoint_number=None, **kwargs) -> None:
        # Checkpoint.write, not CheckpointManager.save: on a worker whose variables span two tasks the
        # save returns no path, which CheckpointManager's bookkeeping cannot take.
        self._checkpoint.write(os.path.join(self.directory, f"ckpt-{checkpoint_number or 0}"))
        tf.io.gfile.rmtree(self.directory)


def checkpoint_manager(
    checkpoint: tf.train.Checkpoint, directory: str, max_to_keep: int, strategy: tf.distribute.Strategy, resume: bool = True
) -> tf.train.CheckpointManager:
    """The chief's (or single process's) CheckpointManager on `directory`, a WorkerCheckpointManager elsewhere.

    Args:
        resume: False when the chief is about to archive `directory` (--restart), so workers do not
            restore a checkpoint that is being moved away.
    """
    if is_chief(strategy):
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
    task_type, task_id = task(strategy)
    temp_directory = os.path.join(directory, f".{task_type}-{task_id}-temp")
    return WorkerCheckpointManager(checkpoint, directory, temp_directory, resume=resume)


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


def check_resumable(config: TrainConfig, output_dir: str) -> None:
    """Stops with the fix, instead of a shape error deep in restore, when OUTPUT_DIR holds other networks.

    Raises:
        UsageError: the run in OUTPUT_DIR was trained with another task, channel count or width, or its
            config.json cannot be read (then nothing tells whether its checkpoints fit).
    """
    saved_config_path = os.path.join(output_dir, CONFIG_FILE)
    if not os.path.exists(saved_config_path):
        return
    try:
        previous = network_shape(read_run_config(saved_config_path))
    except UsageError as err:  # unreadable, or a value this version refuses: the networks it holds are unknown
        raise UsageError(
            f"{err}; so whether the checkpoints in {config.output_dir} fit cannot be checked: fix the file, pass "
            "--restart (the old run is kept aside) or another --output-dir"
        ) from err
    current = network_shape(config)
    differ = [f"--{k} {previous[k]} (now {current[k]})" for k in current if previous[k] != current[k]]
    if differ:
        out, saved = config.output_dir, read_run_config(saved_config_path)
        raise UsageError(
            f"{out} holds a run trained with {', '.join(differ)}: that run's networks ({describe_networks(saved)}) "
            f"are not this command's ({describe_networks(config)}), so its checkpoints cannot be resumed. Pass "
            f"--output-dir NEW_FOLDER to train this run beside it, or --restart to start over in {out} (the old "
            f"run is moved to {os.path.join(out, 'previous', '<time>')})"
        )


def describe_networks(config: TrainConfig) -> str:
    """A run's networks in words, e.g. `paired 3->3 channels at 64x64: U-Net depth 6, 64 filters; PatchGAN 64 ...`.

    The size is named because it is what users change; the U-Net's depth follows from it.
    """
    shape = network_shape(config)
    return (
        f"{shape['task']} {shape['input-channels']}->{shape['output-channels']} channels at "
        f"{'x'.join(map(str, config.image_size))}: U-Net depth {shape['generator-depth']}, "
        f"{shape['generator-filters']} filters; PatchGAN {shape['discriminator-filters']} filters; {shape['norm']} norm"
    )
