"""A new user's path end to end: `--dataset NAME` into the default `~` data root -> train -> export -> evaluate -> predict.

The archive comes from a local HTTP server (no network); HOME points at a temporary folder so the
default `--data-root ~/.keras/datasets` is exercised as it is, `~` included; the later commands run
from another working directory, as a user's shell would.
"""

import dataclasses
import functools
import hashlib
import http.server
import json
import os
import tarfile
import threading

import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf.data import sources as datasets
from pix2pix_tf.data.synthetic import write_synthetic_dataset
from pix2pix_tf.evaluate.__main__ import main as evaluate_main
from pix2pix_tf.export import main as export_main
from pix2pix_tf.predict import main as predict_main
from pix2pix_tf.train.__main__ import main as train_main

TINY = ["--image-size", "32", "--generator-filters", "4", "--discriminator-filters", "4", "--generator-depth", "5"]


@pytest.fixture
def facades_server(tmp_path, monkeypatch):
    """The registry's facades entry served from 127.0.0.1: a 6 train / 4 val archive of 32x64 pairs, its SHA-256 on record."""
    served = tmp_path / "served"
    write_synthetic_dataset(str(served / "facades"), train=6, val=4, size=32, seed=5)
    archive = served / "facades.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(served / "facades", arcname="facades")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    monkeypatch.setattr(datasets, "BASE_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(datasets.REGISTRY, "facades", dataclasses.replace(datasets.REGISTRY["facades"], sha256=sha256, md5=None))
    yield
    httpd.shutdown()
    httpd.server_close()


def test_public_dataset_run_exports_evaluates_and_predicts(facades_server, tmp_path, monkeypatch, capsys):
    home, work, elsewhere = tmp_path / "home", tmp_path / "work", tmp_path / "elsewhere"
    for folder in (home, work, elsewhere):
        folder.mkdir()
    monkeypatch.setenv("HOME", str(home))
    cache = home / ".keras" / "datasets" / "facades"

    # 1. Train with the defaults a new user has: --data-root ~/.keras/datasets, --output-dir outputs.
    monkeypatch.chdir(work)
    argv = ["--dataset", "facades", *TINY, "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
            "--val-steps", "1", "--num-samples", "2"]
    assert train_main(argv) == 0
    assert sorted(os.listdir(cache)) == ["train", "val"] and len(os.listdir(cache / "val")) == 4
    run = work / "outputs"
    saved = json.loads((run / "config.json").read_text())
    assert saved["data_root"] == str(home / ".keras" / "datasets")  # stored expanded: no "~" for other tools to trip on
    assert tf.train.latest_checkpoint(str(run / "checkpoints")) is not None

    # 2-4. Every later command from another folder, reading the run's config.json for its data.
    monkeypatch.chdir(elsewhere)
    exports = elsewhere / "exports"
    assert export_main(["--checkpoint-dir", str(run / "checkpoints"), "--export-dir", str(exports),
                        "--formats", "savedmodel,int8_full", "--eval-count", "2", "--calibration-count", "2",
                        "--latency-runs", "1"]) == 0
    report = json.loads((exports / "pix2pix" / "export_report.json").read_text())
    assert report["eval"] == {"dir": str(cache / "val"), "images": 2, "calibration_images": 2}  # the run's val/ and train/
    assert set(report["formats"]) == {"keras", "savedmodel", "tflite_int8_full"}
    assert (exports / "pix2pix" / "1" / "saved_model.pb").is_file()
    assert (exports / "pix2pix" / "generator_int8_full.tflite").stat().st_size > 0

    assert evaluate_main(["--checkpoint-dir", str(run), "--batch-size", "2", "--report-images", "2"]) == 0
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert metrics["data_dir"] == str(cache) and metrics["num_images"] == 4  # the whole val split of the cached dataset
    assert np.isfinite(metrics["l1"]) and metrics["l1"] > 0
    assert (run / "report" / "index.html").is_file()

    capsys.readouterr()
    for backend, model in (("savedmodel", exports / "pix2pix"), ("tflite", exports / "pix2pix" / "generator_int8_full.tflite")):
        out = elsewhere / f"predictions_{backend}"
        assert predict_main([str(cache / "val"), "--backend", backend, "--model", str(model), "--output-dir", str(out)]) == 0
        written = sorted(os.listdir(out))
        assert written == sorted(os.path.splitext(name)[0] + ".png" for name in os.listdir(cache / "val"))
        image = tf.io.decode_png(tf.io.read_file(str(out / written[0])))
        assert image.shape == (32, 64, 3)  # each output at its input's own size (here the whole 32x64 pair file)
    assert "wrote 4 images" in capsys.readouterr().out
