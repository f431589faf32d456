"""Shipped models (pix2pix_tf.pretrained): the ship command, the hash check, and `--pretrained` in every tool.

A tiny run and a tiny segmenter are shipped into a temporary folder and loaded by their manifest's path,
which every tool takes wherever it takes a shipped name.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import evaluate as evaluate_script
import export as export_script
import predict as predict_script
import train as train_script
from pix2pix_tf import pretrained
from pix2pix_tf.data.palette import IGNORE, colours_to_ids
from pix2pix_tf.errors import UsageError
from pix2pix_tf.files import sha256
from pix2pix_tf.evaluate import segmenter
from pix2pix_tf.apps.ship import main as ship
from pix2pix_tf.run import restore_generator

# fp16 weights move a tiny net's tanh outputs by ~1e-3; 2e-2 of the [-1, 1] range is far below a visible change.
FP16_ATOL = 2e-2


def _json(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def shipped(pair_dir, tmp_path_factory):
    """(generator manifest, judge manifest, the run) shipped from a 2-epoch 32 px run and an 8-filter segmenter."""
    run = str(tmp_path_factory.mktemp("run"))
    assert train_script.main(["--data-dir", pair_dir, "--image-size", "32", "--batch-size", "4", "--generator-filters", "4",
                              "--discriminator-filters", "4", "--epochs", "2", "--output-dir", run,
                              "--log-file", os.path.join(run, "train.log"), "--num-samples", "0"]) == 0  # fmt: skip
    seg = str(tmp_path_factory.mktemp("segmenter"))
    assert segmenter.main(["train", "--data-dir", pair_dir, "--image-size", "32", "--filters", "8", "--batch-size", "4",
                           "--epochs", "2", "--output-dir", seg]) == 0  # fmt: skip
    box = str(tmp_path_factory.mktemp("pretrained"))
    assert ship(["judge", "--segmenter", seg, "--name", "tiny", "--output-dir", box]) == 0
    judge = os.path.join(box, "tiny-judge.json")
    assert ship(["generator", "--checkpoint", run, "--name", "tiny", "--output-dir", box, "--judge", f"pretrained:{judge}",
                 "--data-dir", pair_dir, "--dataset", "synthetic", "--examples", "2", "--report-dir", os.path.join(box, "reports")]) == 0  # fmt: skip
    return os.path.join(box, "tiny-generator.json"), judge, run


def test_manifest_names_the_file_its_hash_the_commands_and_the_scores(shipped, pair_dir):
    generator_json, judge_json, run = shipped
    manifest = _json(generator_json)
    weights = os.path.join(os.path.dirname(generator_json), manifest["file"])
    assert manifest["sha256"] == sha256(weights) and manifest["bytes"] == os.path.getsize(weights)
    assert manifest["epoch"] == 2 and manifest["config"]["generator_filters"] == 4
    assert manifest["config"]["data_dir"] == ""  # no path of the shipping machine
    assert manifest["train_command"].startswith("python train.py --data-dir ") and "--generator-filters 4" in manifest["train_command"]
    assert manifest["train_wall_seconds"] is not None and manifest["train_wall_seconds"] >= 0
    assert manifest["command"].startswith("python -m pix2pix_tf.ship generator --checkpoint ")
    assert manifest["commit"] and manifest["machine"]["cores"] == os.cpu_count()
    with np.load(weights) as arrays:
        assert {arrays[name].dtype for name in arrays.files} == {np.dtype(np.float16)}
    (score,) = manifest["scores"].values()
    assert score["num_images"] == 4 and set(score["fcn_score"]["ratio"]) == {"pixel_acc", "class_acc", "class_iou"}
    assert [os.path.basename(p) for p in pretrained.example_files(generator_json)] == ["1.png", "2.png"]
    judge = _json(judge_json)
    assert judge["kind"] == "judge" and set(judge["scores"]["real_val_photos"]) == {"pixel_acc", "class_acc", "class_iou"}


def test_shipped_generator_matches_its_checkpoint_within_fp16(shipped):
    generator_json, _, run = shipped
    loaded = pretrained.load_generator(generator_json)
    original = restore_generator(run).generator
    x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    expected, got = original(x, training=False).numpy(), loaded.generator(x, training=False).numpy()
    assert np.abs(got - expected).max() < FP16_ATOL
    assert np.abs(got - expected).max() == pytest.approx(_json(generator_json)["fp16_max_abs_difference"], abs=FP16_ATOL)
    assert loaded.pretrained == "tiny" and loaded.epoch == 2


def test_evaluate_with_the_shipped_pair_reproduces_the_manifest_scores(shipped, pair_dir, tmp_path):
    generator_json, judge_json, _ = shipped
    report = str(tmp_path / "report")
    assert evaluate_script.main(["--pretrained", generator_json, "--data-dir", pair_dir, "--fcn-score",
                                 f"pretrained:{judge_json}", "--report-dir", report]) == 0  # fmt: skip
    (expected,) = _json(generator_json)["scores"].values()
    got = _json(os.path.join(report, "metrics.json"))
    assert got["fcn_score"]["generated"] == pytest.approx(expected["fcn_score"]["generated"], abs=1e-6)
    assert got["psnr"] == pytest.approx(expected["psnr"], abs=1e-4)


@pytest.mark.parametrize("damage", ["altered", "missing"])
def test_an_altered_or_missing_weights_file_is_refused_in_one_line(shipped, tmp_path, damage):
    generator_json, _, _ = shipped
    box = str(tmp_path / "box")
    shutil.copytree(os.path.dirname(generator_json), box)
    weights = os.path.join(box, "tiny-generator.npz")
    if damage == "missing":
        os.remove(weights)
    else:
        with open(weights, "r+b") as f:
            f.seek(200)
            f.write(b"\x00\x01")
    with pytest.raises(UsageError) as err:
        pretrained.load_generator(os.path.join(box, "tiny-generator.json"))
    message = str(err.value)
    assert "\n" not in message and weights in message
    assert ("SHA-256" in message) if damage == "altered" else ("missing" in message)


def test_shipping_the_same_checkpoint_again_gives_the_same_hash_and_keeps_the_file(shipped, tmp_path):
    """The manifest's ship command reproduces its SHA-256; re-shipping (to add a judge's scores) leaves the file and
    the scores of the judges already in the manifest be."""
    generator_json, _, run = shipped
    box, fresh = str(tmp_path / "box"), str(tmp_path / "fresh")
    shutil.copytree(os.path.dirname(generator_json), box)
    weights = os.path.join(box, "tiny-generator.npz")
    os.utime(weights, ns=(1, 1))
    for folder in (box, fresh):
        assert ship(["generator", "--checkpoint", run, "--name", "tiny", "--output-dir", folder, "--dataset", "synthetic",
                     "--examples", "0"]) == 0  # fmt: skip
    assert os.stat(weights).st_mtime_ns == 1  # kept, not rewritten
    assert sha256(os.path.join(fresh, "tiny-generator.npz")) == sha256(weights) == _json(generator_json)["sha256"]
    # The judges' scores of these very weights stay in the manifest; a new folder's manifest starts with none.
    earlier = _json(generator_json)["scores"]
    assert earlier and _json(os.path.join(box, "tiny-generator.json"))["scores"] == earlier
    assert _json(os.path.join(fresh, "tiny-generator.json"))["scores"] == {}


def test_an_unknown_name_lists_the_shipped_ones():
    with pytest.raises(UsageError, match=r"no pretrained generator 'nope' \(shipped: .*\)"):
        pretrained.load_generator("nope")


def test_predict_with_no_inputs_translates_the_shipped_examples_at_the_training_size(shipped, tmp_path, capsys):
    generator_json, _, _ = shipped
    out = str(tmp_path / "out")
    assert predict_script.main(["--pretrained", generator_json, "--output-dir", out]) == 0
    assert sorted(os.listdir(out)) == ["1.png", "2.png"]
    # The examples are 256 px label maps, 8x the 32 px training size: squashed to it and back, not tiled.
    assert tf.io.decode_png(tf.io.read_file(os.path.join(out, "1.png"))).shape == (256, 256, 3)
    assert "translating the 2 example label maps" in capsys.readouterr().out


def test_predict_refuses_pretrained_with_another_backend(shipped, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict_script.main(["--pretrained", shipped[0], "--backend", "tflite", "--model", "x.tflite"])
    assert exit_info.value.code == 2 and "--pretrained runs on --backend checkpoint" in capsys.readouterr().err


def test_export_of_the_shipped_generator_needs_no_data(shipped, tmp_path):
    generator_json, _, _ = shipped
    export_dir = str(tmp_path / "exports")
    assert export_script.main(["--pretrained", generator_json, "--export-dir", export_dir, "--formats", "savedmodel",
                               "--eval-count", "2", "--latency-runs", "1"]) == 0  # fmt: skip
    report = _json(os.path.join(export_dir, "pix2pix", "export_report.json"))
    assert report["model"]["resize_mode"] == "squash"  # 256 px examples, 32 px model
    assert report["eval"]["images"] == 2 and report["formats"]["savedmodel"]["max_abs_error"] < 1e-4


def test_demo_exports_the_shipped_generator_once_into_the_cache(shipped, tmp_path, monkeypatch):
    from pix2pix_tf.apps.demo import Translator, pretrained_export

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model_dir = pretrained_export(shipped[0])
    assert model_dir.startswith(str(tmp_path / "cache")) and os.path.isfile(os.path.join(model_dir, "saved_model.pb"))
    stamp = os.path.getmtime(os.path.join(model_dir, "saved_model.pb"))
    assert pretrained_export(shipped[0]) == model_dir and os.path.getmtime(os.path.join(model_dir, "saved_model.pb")) == stamp
    assert Translator(model_dir).modes["resize_mode"] == "squash"


def test_site_reads_the_shipped_generator_as_onnx(shipped):
    from pix2pix_tf.apps.site import PREFIX, model_signature, read_model

    onnx_bytes, name = read_model(PREFIX + shipped[0])
    assert name == "pretrained tiny (epoch 2)"
    assert model_signature(onnx_bytes, os.path.dirname(shipped[0]))[1] == (32, 32)


def test_the_shipped_cityscapes_generator_loads_hash_checked_and_paints(tmp_path):
    """The file in the package: its manifest's hash and size, the 40 MB budget of everything shipped, and a translation."""
    manifest, weights = pretrained.read_manifest("cityscapes", "generator")  # raises if the hash differs
    assert os.path.getsize(weights) == manifest["bytes"] <= 25_000_000
    shipped = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(pretrained.PRETRAINED_DIR)
                  for f in files if not f.endswith((".py", ".pyc")))  # fmt: skip
    assert shipped <= 40_000_000
    loaded = pretrained.load_generator("cityscapes")
    assert loaded.generator.count_params() == manifest["parameters"] and loaded.epoch == manifest["epoch"]
    scores = [score["fcn_score"]["ratio"]["pixel_acc"] for score in manifest["scores"].values()]
    assert scores and all(0.5 < ratio <= 1.05 for ratio in scores)  # the judge's verdict travels with the file
    label = pretrained.example_inputs("cityscapes", loaded.config.image_size, 1)
    photo = loaded.generator(label, training=False).numpy()
    assert photo.shape == label.shape and -1 <= photo.min() < photo.max() <= 1
    # A street photo, not the label map's flat colours: the output varies within each label colour's region.
    colours, region = np.unique(label.reshape(-1, 3), axis=0, return_inverse=True)
    spread = [photo.reshape(-1, 3)[region.ravel() == k].std() for k in range(len(colours)) if (region == k).sum() > 500]
    assert spread and np.median(spread) > 0.02


def test_the_shipped_cityscapes_judge_loads_hash_checked_and_reads_the_shipped_generators_streets():
    """The judge in the package: its hash and size, and it reads the shipped generator's photos of the shipped
    examples as their label maps, far better than it reads a flat grey image under the same label maps."""
    manifest, weights = pretrained.read_manifest("cityscapes", "judge")  # raises if the hash differs
    assert os.path.getsize(weights) == manifest["bytes"] <= 20_000_000
    assert 0.7 < manifest["scores"]["real_val_photos"]["pixel_acc"] <= 1
    judge = segmenter.load_segmenter("pretrained:cityscapes")
    generator = pretrained.load_generator("cityscapes")
    files = pretrained.example_files("cityscapes")
    labels = tf.stack([tf.io.decode_png(tf.io.read_file(f), channels=3) for f in files])
    ids = colours_to_ids(tf.image.resize(labels, judge.size, method="nearest"))
    photos = generator.generator(pretrained.example_inputs("cityscapes", generator.config.image_size, len(files)), training=False)

    def pixel_acc(images):
        predicted, scored = segmenter.predict_ids(judge, images).numpy(), ids.numpy() != IGNORE
        return (predicted == ids.numpy())[scored].mean()

    generated, grey = pixel_acc(photos), pixel_acc(tf.zeros_like(photos))
    assert generated > 0.5 and generated > grey + 0.2, (generated, grey)
