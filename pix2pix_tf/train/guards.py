"""Guards of a training run: SIGTERM/SIGINT become a checkpoint and a clean stop; a NaN/Inf loss stops it at once."""

from __future__ import annotations

import logging
import math
import signal
import threading

import keras

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
