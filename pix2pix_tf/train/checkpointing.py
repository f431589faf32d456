"""Never lose a run: step-level checkpoints, SIGTERM/SIGINT handling, mid-epoch resume and a NaN/Inf guard."""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import threading
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from ..core.losses import METRIC_NAMES

logger = logging.getLogger("pix2pix_tf")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(Exception):
    """A stop signal arrived; a checkpoint of the current step was saved before this was raised."""

    def __init__(self, signum: int, step: int, path: str):
        self.signum, self.step, self.path = signum, step, path
        super().__init__(
            f"stopped by {signal.Signals(signum).name} at step {step}: checkpoint saved to {path}; "
            "re-run the same command to resume"
        )


class NonFiniteLoss(RuntimeError):
    """A loss or a weight became NaN/Inf; nothing was saved after the last good checkpoint."""


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


def plan_segments(completed_epochs: int, epoch_step: int, global_step: int, steps: int, epochs: int) -> list[Segment]:
    """fit() calls that finish an interrupted epoch, then run the remaining whole epochs.

    Keras' fit() gives every epoch the same length, so a resume from `epoch_step` steps into an
    epoch first runs that epoch's remaining steps alone; the train stream skips the `global_step`
    batches already consumed, so the data continues exactly where it stopped.
    """
    segments, start = [], global_step
    if epoch_step and completed_epochs < epochs:
        remaining = max(steps - epoch_step, 1)  # >= 1 even if --steps-per-epoch shrank meanwhile
        segments.append(Segment(completed_epochs, completed_epochs + 1, remaining, start))
        completed_epochs, start = completed_epochs + 1, start + remaining
    if completed_epochs < epochs:
        segments.append(Segment(completed_epochs, epochs, steps, start))
    return segments


class StopSignals:
    """Context manager: SIGTERM/SIGINT set `received` instead of killing the process mid-write.

    The training loop checks it after each step. A second SIGINT (Ctrl-C twice) aborts at once.
    """

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame):
        self.received = signum
        logger.warning(
            "%s received: saving a checkpoint after this step, then stopping (Ctrl-C again aborts without saving)",
            signal.Signals(signum).name,
        )
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # Python delivers signals to the main thread only; there is nothing to catch
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class FiniteGuard(keras.callbacks.Callback):
    """Stops training with NonFiniteLoss as soon as a train or val loss is NaN/Inf.

    Placed first in the callback list, it raises before history.json, the plots or a checkpoint
    can record the step. keras.callbacks.TerminateOnNaN does not fit: it watches only `loss`, and
    its `stop_training` still runs fit()'s end-of-epoch callbacks, which would checkpoint the bad
    weights as a finished epoch.
    """

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f"train step {batch + 1} of epoch {self._epoch + 1}", prefix="")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, f"epoch {epoch + 1}", prefix="")
        self._check(logs, f"validation after epoch {epoch + 1}", prefix="val_")

    def _check(self, logs, where: str, prefix: str) -> None:
        values = {prefix + k: (logs or {}).get(prefix + k) for k in METRIC_NAMES}
        bad = [k for k, v in values.items() if v is not None and not math.isfinite(float(v))]
        if bad:
            raise NonFiniteLoss(
                f"{', '.join(bad)} became NaN/Inf at {where}: training stopped, the last good checkpoint is kept. "
                "Lower --lr or check the data, then re-run (it resumes from that checkpoint)"
            )


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
