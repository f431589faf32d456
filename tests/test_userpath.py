"""A user's paths: `~` and spaces in every tool's path flags, and a new user's path end to end.

End to end: `--dataset NAME` into the default `~` data root -> train -> export -> evaluate -> predict.
The archive comes from a local HTTP server (no network); HOME points at a temporary folder with a
space in its name, so the default `--data-root ~/.keras/datasets` is exercised as it is, `~` included;
the later commands run from another working directory, as a user's shell would, and pass their paths
as `--flag=~/...`, which no shell expands.
"""

import argparse
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

from pix2pix_tf.apps.predict import build_parser as predict_parser
from pix2pix_tf.config import TrainConfig, add_config_flags, config_from_args
from pix2pix_tf.data import sources as datasets
from pix2pix_tf.data.synthetic import write_synthetic_dataset
from pix2pix_tf.demo import main as demo_main
from pix2pix_tf.site import main as site_main
from pix2pix_tf.deploy.export import ExportConfig
from pix2pix_tf.evaluate.__main__ import main as evaluate_main
from pix2pix_tf.evaluate.evaluation import EvalConfig
from pix2pix_tf.evaluate.segmenter import SegmenterConfig
from pix2pix_tf.export import main as export_main
from pix2pix_tf.predict import main as predict_main
from pix2pix_tf.train.__main__ import main as train_main

TINY = ["--image-size", "32", "--generator-filters", "4", "--discriminator-filters", "4", "--generator-depth", "5"]
# The tools whose flags are generated from a config dataclass (config.add_config_flags), and what each needs besides.
CONFIG_TOOLS = {"train": TrainConfig, "evaluate": EvalConfig, "export": ExportConfig, "segmenter": SegmenterConfig}
REQUIRED = {"train": ["--dataset", "synthetic"], "segmenter": ["--data-dir", "data"]}


def _path_fields(config_cls) -> list[str]:
    return [f.name for f in dataclasses.fields(config_cls) if f.metadata.get("path")]


def _parse(tool: str, argv: list[str]):
    """The config a tool's command line gives, parsed as the tool parses it."""
    parser = argparse.ArgumentParser()
    add_config_flags(parser, CONFIG_TOOLS[tool])
    return config_from_args(parser.parse_args(argv), CONFIG_TOOLS[tool])


@pytest.fixture
def home(tmp_path, monkeypatch):
    """HOME in a folder whose name has a space; the working directory elsewhere."""
    home = tmp_path / "my home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


def test_every_path_field_is_declared_a_path():
    """A path flag added later without option(path=...) would take `~` literally: fail here instead."""
    for tool, config_cls in CONFIG_TOOLS.items():
        for f in dataclasses.fields(config_cls):
            looks_like_a_path = f.name.endswith(("_dir", "_file", "_root")) or f.name in ("cache", "fcn_score")
            assert bool(f.metadata.get("path")) == looks_like_a_path, (tool, f.name)


@pytest.mark.parametrize("tool,field", [(tool, f) for tool, cls in CONFIG_TOOLS.items() for f in _path_fields(cls)])
def test_config_path_flags_expand_home_and_keep_spaces(tool, field, home, tmp_path):
    flag = "--" + field.replace("_", "-")
    required = [] if field == "data_dir" else REQUIRED.get(tool, [])
    for argv in ([f"{flag}=~/a b/c"], [flag, "~/a b/c"]):  # the `=` form reaches the program unexpanded
        assert getattr(_parse(tool, required + argv), field) == str(home / "a b" / "c"), argv
    kind = next(f.metadata["path"] for f in dataclasses.fields(CONFIG_TOOLS[tool]) if f.name == field)
    relative = getattr(_parse(tool, required + [flag, "a b/c"]), field)
    assert relative == (str(tmp_path / "a b" / "c") if kind == "absolute" else "a b/c")  # a run folder stays movable


def test_predict_path_flags_expand_home_and_keep_spaces(home):
    args = predict_parser().parse_args(["~/in put/*.png", "~/x y.jpg", "--output-dir=~/out put",
                                        "--checkpoint-dir=~/my run", "--keras-file", "~/g 1.keras",
                                        "--model=~/ex ports/pix2pix"])
    assert args.inputs == [f"{home}/in put/*.png", f"{home}/x y.jpg"]
    assert (args.output_dir, args.checkpoint_dir, args.keras_file, args.model) == (
        f"{home}/out put", f"{home}/my run", f"{home}/g 1.keras", f"{home}/ex ports/pix2pix")


def test_demo_path_flags_expand_home(home, capsys):
    for argv, expected in ((["--model=~/no model"], f"{home}/no model"),
                           (["--model", "x", "--examples=~/no examples"], f"{home}/no examples")):
        with pytest.raises(SystemExit) as exc:
            demo_main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and expected in err and "~" not in err, err


def test_site_path_flags_expand_home(home, capsys):
    # The runtime is looked for first; --model, --output-dir and --examples take the same user_path type.
    for argv in (["--model", "m.onnx", "--runtime-dir=~/no runtime"], ["--model=~/m.onnx", "--runtime-dir", "~/no runtime"]):
        with pytest.raises(SystemExit) as exc:
            site_main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and f"is not installed in {home}/no runtime:" in err and "~" not in err, err


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
    home, elsewhere = tmp_path / "my home", tmp_path / "else where"
    work = home / "my work"
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
    exports = home / "my exports"
    assert export_main(["--checkpoint-dir=~/my work/outputs/checkpoints", "--export-dir=~/my exports",
                        "--formats", "savedmodel,int8_full", "--eval-count", "2", "--calibration-count", "2",
                        "--latency-runs", "1"]) == 0
    report = json.loads((exports / "pix2pix" / "export_report.json").read_text())
    assert report["eval"] == {"dir": str(cache / "val"), "images": 2, "calibration_images": 2}  # the run's val/ and train/
    assert set(report["formats"]) == {"keras", "savedmodel", "tflite_int8_full"}
    assert (exports / "pix2pix" / "1" / "saved_model.pb").is_file()
    assert (exports / "pix2pix" / "generator_int8_full.tflite").stat().st_size > 0

    assert evaluate_main(["--checkpoint-dir=~/my work/outputs", "--batch-size", "2", "--report-images", "2"]) == 0
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    assert metrics["data_dir"] == str(cache) and metrics["num_images"] == 4  # the whole val split of the cached dataset
    assert np.isfinite(metrics["l1"]) and metrics["l1"] > 0
    assert (run / "report" / "index.html").is_file()

    capsys.readouterr()
    for backend, model in (("savedmodel", "pix2pix"), ("tflite", "pix2pix/generator_int8_full.tflite")):
        out = home / f"predictions {backend}"
        assert predict_main(["~/.keras/datasets/facades/val", "--backend", backend, f"--model=~/my exports/{model}",
                             f"--output-dir=~/predictions {backend}"]) == 0
        written = sorted(os.listdir(out))
        assert written == sorted(os.path.splitext(name)[0] + ".png" for name in os.listdir(cache / "val"))
        image = tf.io.decode_png(tf.io.read_file(str(out / written[0])))
        assert image.shape == (32, 64, 3)  # each output at its input's own size (here the whole 32x64 pair file)
    assert "wrote 4 images" in capsys.readouterr().out
