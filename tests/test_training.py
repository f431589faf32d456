"""Training: the step learns, train.py writes every output, and a re-run resumes at the right epoch."""

import json
import os
import re
import shutil
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

import train as train_script
from pix2pix_tf.config import TrainConfig, UsageError
from pix2pix_tf.data.pairs import list_images, make_eval_dataset
from pix2pix_tf.train import callbacks as cb
from pix2pix_tf.train.checkpointing import make_checkpoint
from pix2pix_tf.train.guards import Interrupted
from pix2pix_tf.train.loop import build_pix2pix, train
from pix2pix_tf.train.optimizers import linear_decay


def test_overfits_a_small_batch(pair_dir):
    config = TrainConfig(data_dir=pair_dir, image_size=32, batch_size=4, generator_filters=8, discriminator_filters=8, seed=1)
    tf.keras.utils.set_random_seed(1)
    model = build_pix2pix(config)
    x, y = next(iter(make_eval_dataset(list_images(pair_dir, "train"), config, batch_size=4)))

    def l1():
        return float(tf.reduce_mean(tf.abs(model.generator(x, training=False) - y)))

    before = l1()
    model.fit(tf.data.Dataset.from_tensors((x, y)).repeat(100), epochs=1, shuffle=False, verbose=0)
    assert model.g_optimizer.iterations.numpy() == 100
    assert l1() < 0.5 * before, (before, l1())


def _run(argv):
    assert train_script.main(argv) == 0


def test_train_py_writes_every_output_and_resumes(pair_dir, tmp_path):
    out, log = str(tmp_path / "outputs"), str(tmp_path / "logs" / "pix2pix.log")
    common = ["--data-dir", pair_dir, "--image-size", "32", "--batch-size", "4", "--generator-filters", "4",
              "--discriminator-filters", "4", "--output-dir", out, "--log-file", log, "--num-samples", "2"]
    _run(common + ["--epochs", "2"])
    for path in ("plots/train_loss.png", "plots/val_loss.png", "samples/epoch_001.png", "samples/epoch_002.png",
                 "checkpoints/checkpoint", "history.json", "config.json"):
        assert os.path.getsize(os.path.join(out, path)) > 0, path
    assert any(f.startswith("events") for f in os.listdir(os.path.join(out, "tensorboard", "validation")))
    assert "epoch 2/2" in open(log).read()
    assert re.search(r"epoch 1/2 done: about \d+ s left", open(log).read())  # the run's own estimate of its end
    history = json.load(open(os.path.join(out, "history.json")))
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"g_total", "g_gan", "g_l1", "d_total", "val_g_total", "val_d_total", "img_per_sec"} <= set(history[0])

    _run(common + ["--epochs", "3"])  # same command, more epochs: resumes after epoch 2
    history = json.load(open(os.path.join(out, "history.json")))
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert os.path.exists(os.path.join(out, "samples", "epoch_003.png"))
    assert "resumed from" in open(log).read()

    config = TrainConfig(data_dir=pair_dir, image_size=32, generator_filters=4, discriminator_filters=4)
    checkpoint = make_checkpoint(build_pix2pix(config))
    checkpoint.restore(tf.train.latest_checkpoint(os.path.join(out, "checkpoints"))).expect_partial()
    steps_per_epoch = 12 // 4
    assert int(checkpoint.epoch) == 3
    assert int(checkpoint.g_optimizer.iterations) == int(checkpoint.d_optimizer.iterations) == 3 * steps_per_epoch

    _run(common + ["--epochs", "3", "--restart", "--steps-per-epoch", "1"])  # starts over, old run kept aside
    assert [row["epoch"] for row in json.load(open(os.path.join(out, "history.json")))] == [1, 2, 3]
    previous = os.listdir(os.path.join(out, "previous"))
    assert len(previous) == 1 and os.path.exists(os.path.join(out, "previous", previous[0], "checkpoints", "checkpoint"))


def test_time_left_comes_from_the_last_whole_epochs_not_the_traced_first():
    assert cb.time_left([100.0], 4) == 400.0  # only the first epoch so far: it is all there is
    assert cb.time_left([100.0, 10.0, 20.0], 2) == 30.0  # the first (tracing) epoch no longer counts
    assert cb.time_left([100.0, 50.0, 10.0, 10.0, 10.0], 10) == 100.0  # the last three
    assert [cb.format_duration(s) for s in (45, 720, 7500)] == ["45 s", "12 min", "2 h 05 min"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--data-dir", "/no/such/dir"], "does not exist"),
        (["--dataset", "synthetic", "--image-size", "100"], "not a multiple"),
        (["--dataset", "synthetic", "--epochs", "-2"], "--epochs must be >= 0"),
        (["--dataset", "synthetic", "--epochs", "3", "--epochs-decay", "5"], "--epochs-decay 5 must be between 0 and"),
        ([], "no data"),
    ],
)
def test_cli_errors_exit_2_with_one_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        train_script.main(argv + ["--output-dir", str(tmp_path), "--log-file", str(tmp_path / "x.log")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# --epochs-decay: junyanz's `linear` policy, set once per epoch on both optimizers by the LearningRate callback.


def test_linear_decay_matches_the_closed_form():
    lr, epochs, decay = 2e-4, 5, 3  # 2 constant epochs, then 3 decaying: 3/4, 2/4, 1/4 of the rate
    assert [linear_decay(lr, e, epochs, decay) / lr for e in range(6)] == pytest.approx([1, 1, 3 / 4, 2 / 4, 1 / 4, 0])
    assert [linear_decay(1.0, e, 2, 2) for e in range(3)] == pytest.approx([2 / 3, 1 / 3, 0])  # all decay
    assert linear_decay(1.0, 1, 2, 0) == 1.0  # --epochs-decay 0: constant throughout
    assert linear_decay(1.0, 9, 2, 1) == 0.0  # past the end: zero, never negative


def test_epochs_decay_is_validated(pair_dir):
    with pytest.raises(UsageError, match=r"--epochs-decay 4 must be between 0 and --epochs \(3\)"):
        TrainConfig(data_dir=pair_dir, epochs=3, epochs_decay=4)
    with pytest.raises(UsageError, match="--epochs-decay -1 must be between 0"):
        TrainConfig(data_dir=pair_dir, epochs=3, epochs_decay=-1)
    assert TrainConfig(data_dir=pair_dir, epochs=3, epochs_decay=3).epochs_decay == 3


def test_both_optimizers_decay_during_fit(pair_dir):
    config = TrainConfig(data_dir=pair_dir, image_size=32, generator_filters=4, discriminator_filters=4,
                         epochs=4, epochs_decay=2)  # fmt: skip
    model = build_pix2pix(config)
    x, y = next(iter(make_eval_dataset(list_images(pair_dir, "train"), config, batch_size=4)))
    history = model.fit(tf.data.Dataset.from_tensors((x, y)).repeat(), epochs=4, steps_per_epoch=2, verbose=0,
                        callbacks=[cb.LearningRate(2e-4, epochs=4, decay_epochs=2)])  # fmt: skip
    assert history.history["lr"] == pytest.approx([2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3], rel=1e-6)
    for optimizer in (model.g_optimizer, model.d_optimizer):
        assert int(optimizer.iterations) == 8
        assert float(optimizer.learning_rate) == pytest.approx(2e-4 / 3, rel=1e-6)  # the last epoch's
    assert np.isfinite(history.history["g_total"]).all()


def _lr_config(pair_dir, out, **overrides):
    settings = {"image_size": 32, "batch_size": 4, "generator_filters": 4, "discriminator_filters": 4, "val_steps": 1,
                "num_samples": 0, "epochs": 3, "epochs_decay": 2, "steps_per_epoch": 2, "checkpoint_every": 0}
    paths = {"output_dir": str(out), "log_file": str(out / "log.txt")}
    return TrainConfig(data_dir=pair_dir, **paths, **{**settings, **overrides})


def _record_rates(monkeypatch, stop_at: int | None = None) -> list:
    """(step, G's rate, D's rate) of every train step; SIGTERM after step `stop_at`."""
    seen = []

    def begin(self, batch, logs=None):
        g, d = self.model.g_optimizer, self.model.d_optimizer
        seen.append((int(g.iterations), float(g.learning_rate), float(d.learning_rate)))

    def end(self, batch, logs=None):
        if int(self.model.g_optimizer.iterations) == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cb.LearningRate, "on_train_batch_begin", begin, raising=False)
    monkeypatch.setattr(cb.LearningRate, "on_train_batch_end", end, raising=False)
    return seen


def _tags(event_dir) -> set[str]:
    return {value.tag for name in os.listdir(event_dir) for event in tf.compat.v1.train.summary_iterator(
        os.path.join(event_dir, name)) for value in event.summary.value}  # fmt: skip


def test_a_resumed_run_continues_the_decay_exactly(pair_dir, tmp_path, monkeypatch):
    """Interrupted mid-epoch and resumed: the same rate at every step as uninterrupted (the closed form, as above)."""
    # 3 epochs of 2 steps (--steps-per-epoch caps the 3 the data has), the last 2 decaying: 1, 2/3, 1/3 of 2e-4.
    rates = [2e-4 * f for f in (1, 1, 2 / 3, 2 / 3, 1 / 3, 1 / 3)]
    stopped = _record_rates(monkeypatch, stop_at=3)  # SIGTERM in the middle of epoch 2
    resumed = tmp_path / "resumed"
    with pytest.raises(Interrupted, match="at step 3"):
        train(_lr_config(pair_dir, resumed))
    shutil.copytree(resumed, tmp_path / "recapped")
    after = _record_rates(monkeypatch)
    train(_lr_config(pair_dir, resumed))
    steps = stopped + after
    assert [step for step, _, _ in steps] == list(range(6))
    assert [g for _, g, _ in steps] == pytest.approx(rates, rel=1e-6)
    assert [d for _, _, d in steps] == [g for _, g, _ in steps]  # D's optimizer decays alike
    rows = json.loads((resumed / "history.json").read_text())
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert [row["lr"] for row in rows] == pytest.approx(rates[::2], rel=1e-6)  # the resumed epoch's rate too
    tags = _tags(resumed / "tensorboard" / "train")
    assert "epoch_lr" in tags and "epoch_learning_rate" not in tags  # one name for the rate

    # Resumed with a larger cap: epoch 2 is finished to 3 steps (3, 4) at 2/3, then epoch 3 (5, 6, 7) at 1/3;
    # counted from step 0 in epochs of 3, step 5 would still be in epoch 2.
    recapped = _record_rates(monkeypatch)
    train(_lr_config(pair_dir, tmp_path / "recapped", steps_per_epoch=3))
    assert [step for step, _, _ in recapped] == [3, 4, 5, 6, 7]
    assert [g for _, g, _ in recapped] == pytest.approx([2e-4 * 2 / 3] * 2 + [2e-4 / 3] * 3, rel=1e-6)


def test_steps_that_fp16_skips_do_not_hold_back_the_decay(pair_dir, tmp_path, monkeypatch):
    """A LossScaleOptimizer does not count the overflowing steps it skips; each epoch still gets its own rate."""

    class Overflowing(keras.optimizers.LossScaleOptimizer):
        def __init__(self, inner_optimizer, **kwargs):  # a scale fp16 gradients overflow at: every step skipped
            super().__init__(inner_optimizer, **{**kwargs, "initial_scale": 2.0**60})

    monkeypatch.setattr(keras.optimizers, "LossScaleOptimizer", Overflowing)
    seen = _record_rates(monkeypatch)
    train(_lr_config(pair_dir, tmp_path / "run", precision="fp16"))
    assert [step for step, _, _ in seen] == [0] * 6  # no step counted: a step-keyed schedule would stay at epoch 1
    assert [g for _, g, _ in seen] == pytest.approx([2e-4 * f for f in (1, 1, 2 / 3, 2 / 3, 1 / 3, 1 / 3)], rel=1e-6)
    assert [d for _, _, d in seen] == [g for _, g, _ in seen]
