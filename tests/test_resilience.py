"""Never lose a run: signals checkpoint and stop, kill -9 resumes mid-epoch, resumes are bit-exact, NaN never saved."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import train as train_script
from pix2pix_tf.config import TrainConfig
from pix2pix_tf.core.model import Pix2Pix
from pix2pix_tf.train import callbacks as cb
from pix2pix_tf.errors import UsageError
from pix2pix_tf.train.checkpointing import RunCheckpoint, Segment, check_resumable, make_checkpoint, plan_segments
from pix2pix_tf.train.guards import Interrupted, NonFiniteLoss, StopSignals
from pix2pix_tf.train.loop import build_pix2pix, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {
    "image_size": 32, "batch_size": 4, "generator_filters": 4, "discriminator_filters": 4,
    "val_steps": 1, "num_samples": 0,
}


def _config(pair_dir, out, **overrides):
    return TrainConfig(data_dir=pair_dir, output_dir=str(out), log_file=str(out / "log.txt"), **{**TINY, **overrides})


def _checkpoint_values(out) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(out / "checkpoints")))
    names = [name for name in reader.get_variable_to_shape_map() if "save_counter" not in name]
    return {name: reader.get_tensor(name) for name in names if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def _rows(out, drop=("img_per_sec", "train_seconds")):
    return [{k: v for k, v in row.items() if k not in drop} for row in json.loads((out / "history.json").read_text())]


def test_plan_segments_finishes_the_interrupted_epoch_first():
    assert plan_segments(0, 0, 0, steps=10, epochs=3) == [Segment(0, 3, 10, 0)]
    assert plan_segments(1, 4, 14, steps=10, epochs=3) == [Segment(1, 2, 6, 14), Segment(2, 3, 10, 20)]
    assert plan_segments(2, 4, 24, steps=10, epochs=3) == [Segment(2, 3, 6, 24)]


def test_plan_segments_rounds_the_interrupted_epoch_to_whole_calls():
    # Stopped after 5 steps under --steps-per-execution 1, resumed under 2: the rest of the epoch is 3 whole
    # calls (6 steps, not 5, which fit() would run as 6 and count as 5), and the next epoch starts at batch 21.
    assert plan_segments(1, 5, 15, steps=10, epochs=3, steps_per_execution=2) == [Segment(1, 2, 6, 15), Segment(2, 3, 10, 21)]
    assert plan_segments(1, 4, 14, steps=10, epochs=3, steps_per_execution=2) == [Segment(1, 2, 6, 14), Segment(2, 3, 10, 20)]
    assert plan_segments(1, 9, 19, steps=10, epochs=2, steps_per_execution=4) == [Segment(1, 2, 4, 19)]


def test_sigterm_mid_epoch_then_resume_is_bit_identical(pair_dir, tmp_path, monkeypatch):
    # 12 train pairs / batch 4 = 3 steps per epoch; dropout, data order and Adam all carry state.
    common = {"epochs": 2, "deterministic": True}
    train(_config(pair_dir, tmp_path / "straight", checkpoint_every=2, **common))
    # Checkpoints every 2 steps and at epoch ends (steps 2, 3, 5, 6), numbered by global step; 3 kept.
    kept = tf.train.get_checkpoint_state(str(tmp_path / "straight" / "checkpoints")).all_model_checkpoint_paths
    assert [path.rsplit("-", 1)[1] for path in kept] == ["3", "5", "6"]

    original = cb.Throughput.on_train_batch_end

    def signal_at_step_4(self, batch, logs=None):
        original(self, batch, logs)
        if int(self.model.g_optimizer.iterations) == 4:  # the 1st of epoch 2's 3 steps
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cb.Throughput, "on_train_batch_end", signal_at_step_4)
    resumed = tmp_path / "resumed"
    with pytest.raises(Interrupted, match="SIGTERM at step 4") as stop:
        train(_config(pair_dir, resumed, checkpoint_every=0, **common))
    assert stop.value.path.endswith("ckpt-4")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone after train()
    assert [row["epoch"] for row in _rows(resumed)] == [1]
    monkeypatch.undo()

    train(_config(pair_dir, resumed, checkpoint_every=0, **common))
    log = (resumed / "log.txt").read_text()
    assert "resumed from" in log and "step 1 of the next" in log
    straight, after = _checkpoint_values(tmp_path / "straight"), _checkpoint_values(resumed)
    assert straight.keys() == after.keys() and any("rng" in name for name in after)
    for name in straight:
        np.testing.assert_array_equal(after[name], straight[name], err_msg=name)
    # Epoch 2's row averages all 3 of its steps (running means restored), exactly as uninterrupted.
    assert _rows(resumed) == _rows(tmp_path / "straight")


def test_step_checkpoints_with_several_steps_per_call(pair_dir, tmp_path, monkeypatch):
    """--steps-per-execution 2: fit() runs whole calls (an epoch of 3 steps runs 4); checkpoints fall between them."""
    out = tmp_path / "run"
    config = _config(pair_dir, out, epochs=2, epochs_decay=1, steps_per_execution=2, checkpoint_every=1)
    original = cb.Throughput.on_train_batch_end

    def signal_at_step_6(self, batch, logs=None):
        original(self, batch, logs)
        if int(self.model.g_optimizer.iterations) == 6:  # after epoch 2's first call (steps 5 and 6)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cb.Throughput, "on_train_batch_end", signal_at_step_6)
    with pytest.raises(Interrupted, match="at step 6"):
        train(config)
    monkeypatch.undo()
    log = (out / "log.txt").read_text()
    assert "an epoch runs 4 steps: 3 rounded up to whole calls of --steps-per-execution 2" in log
    # Saved after step 2, at epoch 1's end (4) and at the stop (6).
    kept = tf.train.get_checkpoint_state(str(out / "checkpoints")).all_model_checkpoint_paths
    assert [path.rsplit("-", 1)[1] for path in kept] == ["2", "4", "6"]
    reader = tf.train.load_checkpoint(kept[-1])
    assert int(reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE")) == 1
    assert int(reader.get_tensor("epoch_step/.ATTRIBUTES/VARIABLE_VALUE")) == 2
    assert int(reader.get_tensor("g_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")) == 6

    rates = []
    monkeypatch.setattr(cb.LearningRate, "on_train_batch_begin", lambda self, batch, logs=None: rates.append(
        (float(self.model.g_optimizer.learning_rate), float(self.model.d_optimizer.learning_rate))), raising=False)  # fmt: skip
    train(config)  # resumes with epoch 2's last call (steps 7 and 8, optimizer steps 6 and 7)
    # --epochs-decay 1: that call runs at epoch 2's rate, half of --lr, in both optimizers.
    assert rates == [pytest.approx((1e-4, 1e-4), rel=1e-6)]
    kept = tf.train.get_checkpoint_state(str(out / "checkpoints")).all_model_checkpoint_paths
    assert [path.rsplit("-", 1)[1] for path in kept] == ["4", "6", "8"]
    final = make_checkpoint(build_pix2pix(_config(pair_dir, out)))
    final.restore(kept[-1]).expect_partial()
    assert int(final.epoch) == 2 and int(final.epoch_step) == 0
    assert int(final.g_optimizer.iterations) == int(final.d_optimizer.iterations) == 8
    assert [row["epoch"] for row in _rows(out)] == [1, 2]
    assert [row["lr"] for row in _rows(out)] == pytest.approx([2e-4, 1e-4], rel=1e-6)


def test_nan_loss_stops_without_saving_over_the_good_checkpoint(pair_dir, tmp_path, monkeypatch, capsys):
    original = Pix2Pix._compute_losses

    def poisoned(self, x, y, training, **kwargs):
        losses = original(self, x, y, training, **kwargs)
        if training:  # from the 5th step on, G's loss and gradients are NaN
            losses["g_total"] = losses["g_total"] * tf.where(self.g_optimizer.iterations >= 4, np.nan, 1.0)
        return losses

    monkeypatch.setattr(Pix2Pix, "_compute_losses", poisoned)
    out = tmp_path / "run"
    argv = ["--data-dir", pair_dir, "--image-size", "32", "--batch-size", "4", "--generator-filters", "4",
            "--discriminator-filters", "4", "--val-steps", "1", "--num-samples", "0", "--epochs", "2",
            "--output-dir", str(out), "--log-file", str(out / "log.txt")]
    assert train_script.main(argv) == 1
    err = capsys.readouterr().err
    assert "g_total became NaN/Inf at train step 2 of epoch 2" in err and "last good checkpoint is kept" in err
    assert tf.train.latest_checkpoint(str(out / "checkpoints")).endswith("ckpt-3")  # epoch 1's
    assert all(np.isfinite(v).all() for v in _checkpoint_values(out).values() if v.dtype.kind == "f")
    assert [row["epoch"] for row in _rows(out)] == [1]


def test_checkpoint_refuses_non_finite_weights(pair_dir, tmp_path):
    model = build_pix2pix(_config(pair_dir, tmp_path))
    checkpoint = make_checkpoint(model)
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path / "checkpoints"), max_to_keep=1)
    saver = RunCheckpoint(manager, checkpoint, every=1, signals=StopSignals())
    saver.set_model(model)
    kernel = model.discriminator.trainable_variables[0]
    kernel.assign(tf.fill(kernel.shape, np.inf))
    saver.step = 1
    with pytest.raises(NonFiniteLoss, match="weights became NaN/Inf"):
        saver._save()
    assert manager.latest_checkpoint is None


def test_second_ctrl_c_aborts_at_once():
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.received == signal.SIGINT  # the first one only asks for a checkpoint and a stop
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _start(pair_dir, out):
    argv = [sys.executable, os.path.join(REPO, "train.py"), "--data-dir", pair_dir, "--image-size", "32",
            "--batch-size", "1", "--generator-filters", "4", "--discriminator-filters", "4", "--val-steps", "1",
            "--num-samples", "0", "--epochs", "1000", "--checkpoint-every", "5",
            "--output-dir", str(out), "--log-file", str(out / "log.txt")]
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        argv, cwd=str(out.parent), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _wait_for_step(out, step: int, process, timeout=90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        latest = tf.train.latest_checkpoint(str(out / "checkpoints"))
        if latest and int(latest.rsplit("-", 1)[1]) >= step:
            return
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"no checkpoint of step >= {step} in time: {process.communicate()[1][-2000:]}")


def test_real_sigterm_exits_143_and_kill_9_resumes(pair_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    process = _start(pair_dir, out)
    _wait_for_step(out, 5, process)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "stopped by SIGTERM at step" in stderr and "Traceback" not in stderr
    stopped_at = int(stderr.split("stopped by SIGTERM at step ")[1].split(":")[0])
    assert tf.train.latest_checkpoint(str(out / "checkpoints")).endswith(f"ckpt-{stopped_at}")  # nothing lost

    process = _start(pair_dir, out)  # the same command resumes, then dies without warning
    _wait_for_step(out, stopped_at + 10, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    latest = tf.train.latest_checkpoint(str(out / "checkpoints"))
    reader = tf.train.load_checkpoint(latest)
    epoch = int(reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    epoch_step = int(reader.get_tensor("epoch_step/.ATTRIBUTES/VARIABLE_VALUE"))
    steps = 12  # per epoch at batch 1
    assert int(latest.rsplit("-", 1)[1]) == epoch * steps + epoch_step  # counters agree with the global step

    train(_config(pair_dir, out, batch_size=1, epochs=epoch + 2, checkpoint_every=5))
    rows = [row["epoch"] for row in json.loads((out / "history.json").read_text())]
    assert rows == list(range(1, epoch + 3))  # no epoch lost or duplicated across three processes
    final = make_checkpoint(build_pix2pix(_config(pair_dir, out)))
    final.restore(tf.train.latest_checkpoint(str(out / "checkpoints"))).expect_partial()
    assert int(final.g_optimizer.iterations) == (epoch + 2) * steps and int(final.epoch) == epoch + 2


def test_resumability_check_never_skips_an_unreadable_config(tmp_path):
    config = TrainConfig(dataset="synthetic", output_dir=str(tmp_path), generator_filters=8)
    saved = config.to_dict()
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved))
    check_resumable(config, str(tmp_path))  # the same networks: resumes
    path.write_text(json.dumps({**saved, "generator_filters": 16}))
    with pytest.raises(UsageError, match=r"--generator-filters 16 \(now 8\)"):
        check_resumable(config, str(tmp_path))
    # A value of the wrong JSON type made TrainConfig's checks raise TypeError, which skipped the check silently.
    for text, cause in ((json.dumps({**saved, "generator_filters": None}), TypeError),
                        (json.dumps({**saved, "epochs": "50"}), TypeError),
                        (json.dumps({**saved, "task": "depth"}), UsageError),  # a value this version refuses
                        ("[]", ValueError), ('{"task": ', ValueError)):
        path.write_text(text)
        with pytest.raises(UsageError, match=r"config.json is not a readable run config .*--restart") as exc:
            check_resumable(config, str(tmp_path))
        assert isinstance(exc.value.__cause__.__cause__, cause), text  # check_resumable <- read_run_config <- cause
