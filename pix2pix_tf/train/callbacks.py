"""fit() callbacks writing a run's outputs: throughput, learning rate, history.json + plots, samples, log lines."""

from __future__ import annotations

import logging
import os
import time

import keras
import numpy as np
import tensorflow as tf

from ..data.pairs import to_uint8
from ..files import write_json
from ..tasks.paired import paired_to_rgb
from .optimizers import linear_decay
from .plots import plot_image_metrics, plot_losses, save_sample_grid


class Throughput(keras.callbacks.Callback):
    """Adds `img_per_sec` to the logs (so the progress bar shows it) and `train_seconds` at epoch end.

    The rate is steady-state: it is timed from the end of an epoch's first step, which in the
    first epoch includes tracing and compiling the step.
    """

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.first = None  # (time, images) at the end of the first step
        self.last = (self.start, 0)

    def on_train_batch_end(self, batch, logs=None):
        now, images = time.perf_counter(), (batch + 1) * self.batch_size
        self.first = self.first or (now, images)
        self.last = (now, images)
        if logs is not None:
            logs["img_per_sec"] = self._rate()

    def _rate(self) -> float:
        (t1, n1), (t0, n0) = self.last, self.first or (self.start, 0)
        if n1 == n0:  # a single step: nothing after it to time, so include it
            t0, n0 = self.start, 0
        return (n1 - n0) / max(t1 - t0, 1e-9)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["img_per_sec"] = self._rate()
            logs["train_seconds"] = self.last[0] - self.start


class LearningRate(keras.callbacks.Callback):
    """Sets both optimizers' rate as each epoch begins (--epochs-decay) and adds it to the epoch's logs as `lr`.

    Keyed on the epoch fit() runs, not on an optimizer's step counter: a loss-scaling optimizer (fp16) does not
    count the steps it skips, and a resume may change --steps-per-epoch, yet every epoch still runs at its own
    rate. A resumed run's first fit() call begins at the interrupted epoch, so its remaining steps get that
    epoch's rate too.
    """

    def __init__(self, lr: float, epochs: int, decay_epochs: int):
        super().__init__()
        self.lr, self.epochs, self.decay_epochs = lr, epochs, decay_epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.rate = linear_decay(self.lr, epoch, self.epochs, self.decay_epochs)
        for optimizer in (self.model.g_optimizer, self.model.d_optimizer):
            optimizer.learning_rate = self.rate  # a variable: the compiled train step reads the new value

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = self.rate


class HistoryWriter(keras.callbacks.Callback):
    """Appends each epoch's logs to history.json and redraws train_loss.png / val_loss.png / metrics.png."""

    def __init__(self, path: str, plots_dir: str, rows: list[dict]):
        super().__init__()
        self.path, self.plots_dir, self.rows = path, plots_dir, rows

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
        write_json(self.path, self.rows)
        plot_losses(self.rows, os.path.join(self.plots_dir, "train_loss.png"), prefix="", title="train")
        if any("val_g_total" in row for row in self.rows):
            plot_losses(self.rows, os.path.join(self.plots_dir, "val_loss.png"), prefix="val_", title="val")
        if any("val_psnr" in row for row in self.rows):
            plot_image_metrics(self.rows, os.path.join(self.plots_dir, "metrics.png"))


class SampleGrid(keras.callbacks.Callback):
    """Translates a fixed set of val inputs each epoch into samples/epoch_NNN.png and TensorBoard.

    `to_rgb(x, y=None)` is the task's display hook (tasks.base.Task.to_rgb): it turns the input, and
    any output given the input, into RGB in [-1, 1] (for colorization: L with ab -> RGB).
    """

    def __init__(self, inputs: tf.Tensor, targets: tf.Tensor, samples_dir: str, tensorboard_dir: str, to_rgb=None):
        super().__init__()
        self.inputs, self.samples_dir = inputs, samples_dir
        self.to_rgb = to_rgb or paired_to_rgb
        self.input_u8 = to_uint8(self.to_rgb(inputs)).numpy()
        self.target_u8 = to_uint8(self.to_rgb(inputs, targets)).numpy()
        self.writer = tf.summary.create_file_writer(os.path.join(tensorboard_dir, "samples"))

    def on_epoch_end(self, epoch, logs=None):
        generated = to_uint8(self.to_rgb(self.inputs, self.model.generator(self.inputs, training=False))).numpy()
        path = os.path.join(self.samples_dir, f"epoch_{epoch + 1:03d}.png")
        save_sample_grid(self.input_u8, generated, self.target_u8, path, title=f"epoch {epoch + 1}")
        row = np.concatenate([self.input_u8, generated, self.target_u8], axis=2)  # [N, H, 3W, C]
        with self.writer.as_default():
            tf.summary.image("samples/input_generated_target", row, step=epoch + 1, max_outputs=len(row))
        self.writer.flush()


class EpochLogger(keras.callbacks.Callback):
    """One log line per epoch, so logs/pix2pix.log keeps what the progress bar showed, and the run's time left.

    Keras' progress bar estimates only the epoch under way; a user of a 70-epoch run wants to know when the
    run ends. The estimate is the mean of the last (up to 3) whole epochs, validation and checkpoint included,
    times the epochs left; the first epoch, which traces the step, counts only while it is the only one.
    """

    def __init__(self, logger: logging.Logger, epochs: int):
        super().__init__()
        self.logger, self.epochs = logger, epochs
        self.durations: list[float] = []
        self.since = None

    def on_train_begin(self, logs=None):
        self.since = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        text = " ".join(f"{k}={v:.4g}" for k, v in (logs or {}).items())
        self.logger.info("epoch %d/%d %s", epoch + 1, self.epochs, text, extra={"file_only": True})
        now = time.perf_counter()
        if self.since is not None:
            self.durations.append(now - self.since)
        self.since = now
        left = self.epochs - (epoch + 1)
        if left > 0 and self.durations:
            seconds = time_left(self.durations, left)
            self.logger.info("epoch %d/%d done: about %s left (%s an epoch)", epoch + 1, self.epochs,
                             format_duration(seconds), format_duration(seconds / left))


def time_left(durations: list[float], epochs_left: int) -> float:
    """Seconds for `epochs_left` more epochs, from the measured whole-epoch `durations` (the first traces the step)."""
    steady = durations[1:] or durations
    recent = steady[-3:]
    return epochs_left * sum(recent) / len(recent)


def format_duration(seconds: float) -> str:
    """'2 h 05 min', '12 min', '45 s'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
