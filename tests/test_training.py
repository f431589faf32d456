"""Training: the step learns, train.py writes every output, and a re-run resumes at the right epoch."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import train as train_script
from pix2pix_tf.config import TrainConfig
from pix2pix_tf.data import list_images, make_eval_dataset
from pix2pix_tf.training import build_pix2pix, make_checkpoint


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


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--data-dir", "/no/such/dir"], "does not exist"),
        (["--dataset", "synthetic", "--image-size", "100"], "not a multiple"),
        (["--dataset", "synthetic", "--epochs", "-2"], "--epochs must be >= 0"),
        ([], "no data"),
    ],
)
def test_cli_errors_exit_2_with_one_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        train_script.main(argv + ["--output-dir", str(tmp_path), "--log-file", str(tmp_path / "x.log")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
