"""A tiny colorization run end to end: train.py on generated photos -> RGB samples -> resume checks -> export."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import evaluate as evaluate_script
import export as export_script
import train as train_script
from pix2pix_tf.apps.demo import Translator
from pix2pix_tf.deploy.litert import LiteRTGenerator
from pix2pix_tf.predict import main as predict_main
from pix2pix_tf.tasks.colorization import rgb_to_lab


@pytest.fixture(scope="module")
def colorization_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("colorization")
    out = str(root / "outputs")
    argv = ["--task", "colorization", "--dataset", "synthetic", "--synthetic-pairs", "10", "--val-fraction", "0.2",
            "--image-size", "32", "--batch-size", "4", "--generator-filters", "4", "--discriminator-filters", "4",
            "--epochs", "1", "--num-samples", "2", "--output-dir", out, "--log-file", str(root / "log.txt")]
    assert train_script.main(argv) == 0
    return out, argv


def test_train_py_colorizes_and_shows_rgb_samples(colorization_run):
    out, _ = colorization_run
    history = json.load(open(os.path.join(out, "history.json")))
    assert {"g_total", "g_l1", "val_g_total", "val_psnr", "val_ssim"} <= set(history[0])
    assert 5 < history[0]["val_psnr"] < 100  # measured on the RGB rebuilt from L + ab, not on ab
    grid = tf.io.decode_png(tf.io.read_file(os.path.join(out, "samples", "epoch_001.png")), channels=3).numpy()
    # The target column is the colour photo rebuilt from (L, ab): the grid is not gray.
    assert np.abs(grid.astype(int) - grid.mean(-1, keepdims=True)).max() > 30
    assert json.load(open(os.path.join(out, "config.json")))["task"] == "colorization"


def test_resuming_with_other_channels_is_a_clear_error(colorization_run, capsys):
    out, argv = colorization_run
    paired = [a for a in argv if a not in ("--task", "colorization")] + ["--epochs", "2"]
    with pytest.raises(SystemExit) as exc:
        train_script.main(paired)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "holds a run trained with --task colorization (now paired), --input-channels 1 (now 3)" in err
    assert "--restart" in err and "Traceback" not in err


def test_evaluate_py_reports_rgb_reconstructions(colorization_run):
    out, _ = colorization_run
    assert evaluate_script.main(["--checkpoint-dir", out, "--split", "val"]) == 0
    metrics = json.load(open(os.path.join(out, "report", "metrics.json")))
    assert metrics["num_images"] == 2 and 5 < metrics["psnr"] < 100 and 0 < metrics["ssim"] <= 1
    images = sorted(os.listdir(os.path.join(out, "report", "images")))
    assert len(images) == 6  # input | generated | target for the 2 val photos
    for name in images:
        assert tf.io.decode_png(tf.io.read_file(os.path.join(out, "report", "images", name))).shape == (32, 32, 3)


def test_export_py_serves_colorized_rgb_for_gray_and_rgb_inputs(colorization_run, tmp_path):
    out, _ = colorization_run
    exports = str(tmp_path / "exports")
    assert export_script.main(["--checkpoint-dir", os.path.join(out, "checkpoints"), "--export-dir", exports,
                               "--formats", "savedmodel,fp32", "--eval-count", "2", "--latency-runs", "1"]) == 0
    signatures = tf.saved_model.load(os.path.join(exports, "pix2pix", "1")).signatures
    rgb = np.random.default_rng(0).integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)
    gray = rgb[..., :1]
    from_rgb = signatures["serving_default"](images=tf.constant(rgb))["images"].numpy()
    from_gray = signatures["serving_default"](images=tf.constant(gray))["images"].numpy()
    assert from_rgb.shape == from_gray.shape == (2, 40, 56, 3) and from_rgb.dtype == np.uint8
    # L comes from the input: the colorized gray image keeps the input's lightness.
    lightness = rgb_to_lab(from_gray.astype(np.float32) / 255)[..., 0].numpy()
    assert np.abs(lightness - rgb_to_lab(np.repeat(gray, 3, -1).astype(np.float32) / 255)[..., 0].numpy()).mean() < 1.0
    (png,) = signatures["translate_encoded"](image_bytes=tf.constant([tf.io.encode_png(gray[0]).numpy()]))["image_bytes"].numpy()
    np.testing.assert_array_equal(tf.io.decode_png(png).numpy(), from_gray[0])
    # translate_float and TFLite are the network itself: L [N, 32, 32, 1] -> ab [N, 32, 32, 2].
    ab = signatures["translate_float"](images=tf.zeros((1, 32, 32, 1)))["images"]
    assert ab.shape == (1, 32, 32, 2)
    report = json.load(open(os.path.join(exports, "pix2pix", "export_report.json")))
    assert report["formats"]["tflite_fp32"]["max_abs_error"] < 1e-4
    assert LiteRTGenerator(os.path.join(exports, "pix2pix", "generator_fp32.tflite")).image_size == (32, 32)

    # The demo server's /api/translate runs translate_encoded: a gray photo comes back colorized.
    colorized = Translator(os.path.join(exports, "pix2pix"))(tf.io.encode_png(gray[1]).numpy())
    np.testing.assert_array_equal(tf.io.decode_png(colorized).numpy(), from_gray[1])
    # predict.py: the checkpoint, SavedModel and TFLite backends colorize alike (TFLite: L -> ab inside colorize()).
    photos = os.path.join(out, "data", "synthetic_photos")
    results = {}
    for backend, flags in {"checkpoint": ["--checkpoint-dir", os.path.join(out, "checkpoints")],
                           "savedmodel": ["--model", os.path.join(exports, "pix2pix")],
                           "tflite": ["--model", os.path.join(exports, "pix2pix", "generator_fp32.tflite")]}.items():
        out_dir = str(tmp_path / backend)
        assert predict_main([photos, "--backend", backend, "--output-dir", out_dir] + flags) == 0
        results[backend] = [tf.io.decode_png(tf.io.read_file(os.path.join(out_dir, f))).numpy() for f in sorted(os.listdir(out_dir))]
    assert len(results["checkpoint"]) == 10 and results["checkpoint"][0].shape == (32, 32, 3)
    for backend in ("savedmodel", "tflite"):
        for a, b in zip(results["checkpoint"], results[backend]):
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, backend
