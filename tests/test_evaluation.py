"""Per-epoch image metrics, evaluate.py's report and metrics.json, and the FCN-score segmenter."""

import html.parser
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import evaluate as evaluate_script
import train as train_script
from pix2pix_tf.data.pairs import list_images
from pix2pix_tf.data.palette import IGNORE, NUM_CLASSES
from pix2pix_tf.evaluate import metrics as metrics_module
from pix2pix_tf.evaluate import segmenter


def _json(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def run_dir(pair_dir, tmp_path_factory):
    """A 2-epoch run of train.py at 32x32 with tiny networks."""
    out = str(tmp_path_factory.mktemp("run"))
    assert train_script.main(["--data-dir", pair_dir, "--image-size", "32", "--batch-size", "4", "--generator-filters", "4",
                              "--discriminator-filters", "4", "--epochs", "2", "--output-dir", out,
                              "--log-file", os.path.join(out, "train.log"), "--num-samples", "0"]) == 0  # fmt: skip
    return out


@pytest.fixture(scope="module")
def segmenter_dir(pair_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("segmenter"))
    assert segmenter.main(["train", "--data-dir", pair_dir, "--image-size", "32", "--filters", "8", "--batch-size", "4",
                           "--epochs", "8", "--output-dir", out]) == 0  # fmt: skip
    return out


def test_training_logs_val_image_metrics_every_epoch(run_dir):
    history = _json(os.path.join(run_dir, "history.json"))
    for row in history:
        assert 0 < row["val_l1"] < 255 and 0 < row["val_psnr"] < 60 and -1 <= row["val_ssim"] <= 1, row
        # l1 is measured on [0, 255] after rounding; g_l1 on [-1, 1]: the same error, 127.5x larger.
        assert row["val_l1"] == pytest.approx(127.5 * row["val_g_l1"], rel=0.01)
        assert "psnr" not in row  # validation only: the train step reports losses
    assert os.path.getsize(os.path.join(run_dir, "plots", "metrics.png")) > 0
    events = EventAccumulator(os.path.join(run_dir, "tensorboard", "validation")).Reload()
    assert {"epoch_l1", "epoch_psnr", "epoch_ssim"} <= set(events.Tags()["tensors"])


def test_segmenter_trains_and_beats_chance(pair_dir, segmenter_dir):
    config = segmenter.SegmenterConfig(data_dir=pair_dir, image_size=32, batch_size=4)
    val = segmenter.make_dataset(list_images(pair_dir, "val"), config, training=False)
    ids = np.concatenate([batch_ids.numpy().ravel() for _, batch_ids in val])
    counts = np.bincount(ids[ids != IGNORE], minlength=NUM_CLASSES)
    majority = counts.max() / counts.sum()  # pixel accuracy of always answering the commonest class
    scores = segmenter.score(segmenter.load_segmenter(segmenter_dir), val)
    assert scores["pixel_acc"] > majority + 0.1, (scores, majority)
    assert scores["class_acc"] > 1.5 / np.count_nonzero(counts), scores  # a constant answer gets 1/classes
    saved = _json(os.path.join(segmenter_dir, "scores.json"))["real_photos"]
    assert saved == pytest.approx(scores)
    assert [row["epoch"] for row in _json(os.path.join(segmenter_dir, "history.json"))] == list(range(1, 9))


def test_segmenter_continues_when_epochs_are_raised(pair_dir, segmenter_dir, capsys):
    argv = ["train", "--data-dir", pair_dir, "--image-size", "32", "--filters", "8", "--batch-size", "4",
            "--epochs", "9", "--output-dir", segmenter_dir]  # fmt: skip
    assert segmenter.main(argv) == 0
    assert [row["epoch"] for row in _json(os.path.join(segmenter_dir, "history.json"))] == list(range(1, 10))
    model = keras.models.load_model(os.path.join(segmenter_dir, segmenter.MODEL_FILE))
    assert int(model.optimizer.iterations) == 9 * (12 // 4)  # 8 epochs restored + 1 trained, 3 steps each
    with pytest.raises(SystemExit) as exc:  # another network in the same folder is refused, not mixed
        segmenter.main([*argv[:6], "16", *argv[7:]])
    assert exc.value.code == 2 and "trained with --filters 8" in capsys.readouterr().err


class _Images(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def test_evaluate_writes_metrics_and_a_report_with_working_images(run_dir, segmenter_dir, tmp_path):
    report = str(tmp_path / "report")
    assert evaluate_script.main(["--checkpoint-dir", run_dir, "--report-dir", report, "--report-images", "3",
                                 "--batch-size", "3", "--fcn-score", segmenter_dir]) == 0  # fmt: skip
    metrics = _json(os.path.join(report, "metrics.json"))
    assert metrics["num_images"] == 4 and metrics["epoch"] == 2 and metrics["split"] == "val"
    # The same generator on the same 4 val images as the last epoch's validation.
    last = _json(os.path.join(run_dir, "history.json"))[-1]
    for name in ("l1", "psnr", "ssim"):
        assert metrics[name] == pytest.approx(last["val_" + name], rel=1e-4, abs=1e-4), name
    fcn = metrics["fcn_score"]
    assert fcn["real"] == pytest.approx(_json(os.path.join(segmenter_dir, "scores.json"))["real_photos"])
    for key in ("pixel_acc", "class_acc", "class_iou"):
        assert 0 <= fcn["generated"][key] <= 1
        assert fcn["ratio"][key] == pytest.approx(fcn["generated"][key] / fcn["real"][key])

    parser = _Images()
    with open(os.path.join(report, "index.html")) as f:
        parser.feed(f.read())
    samples = [src for src in parser.sources if src.startswith("images/")]
    assert len(samples) == 3 * 5  # input, generated, target, segmented generated, segmented real
    for src in samples:
        assert tf.io.decode_png(tf.io.read_file(os.path.join(report, src))).shape == (32, 32, 3), src
    plots = [src for src in parser.sources if not src.startswith("images/")]
    assert plots and all(os.path.isfile(os.path.join(report, src)) for src in plots)  # the run's curves


def test_evaluate_in_paper_mode_is_reproducible_and_not_eval(run_dir, tmp_path):
    results = {}
    for name, flags in {"eval": [], "paper": ["--test-mode", "paper"], "paper-again": ["--test-mode", "paper"]}.items():
        report = str(tmp_path / name)
        assert evaluate_script.main(["--checkpoint-dir", run_dir, "--report-dir", report, "--report-images", "0"] + flags) == 0
        results[name] = _json(os.path.join(report, "metrics.json"))
    assert results["eval"]["test_mode"] == "eval" and results["paper"]["test_mode"] == "paper"
    assert results["paper"]["l1"] != pytest.approx(results["eval"]["l1"], rel=1e-3)
    # Dropout masks follow the run's seed, so a paper-mode score can be reproduced.
    assert results["paper-again"]["l1"] == results["paper"]["l1"]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--test-mode", "train"], "invalid choice: 'train'"),
        (["--checkpoint-dir", "/no/such/run"], "config.json not found"),
        (["--fcn-score", "/no/such/segmenter"], "no segmenter at"),
        (["--batch-size", "0"], "--batch-size >= 1"),
    ],
)
def test_evaluate_errors_exit_2_with_one_line(argv, message, run_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        evaluate_script.main(["--checkpoint-dir", run_dir] + argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_fcn_score_refuses_inputs_that_are_not_label_maps(pair_dir, run_dir, segmenter_dir, tmp_path, capsys):
    os.makedirs(tmp_path / "swapped" / "val")
    for path in list_images(pair_dir, "val"):  # photo on the right: the run (BtoA) would read photos as input
        pair = tf.io.decode_jpeg(tf.io.read_file(path))
        swapped = tf.concat([pair[:, pair.shape[1] // 2 :], pair[:, : pair.shape[1] // 2]], axis=1)
        tf.io.write_file(str(tmp_path / "swapped" / "val" / os.path.basename(path)), tf.io.encode_jpeg(swapped))
    with pytest.raises(SystemExit) as exc:
        evaluate_script.main(["--checkpoint-dir", run_dir, "--data-dir", str(tmp_path / "swapped"),
                              "--report-dir", str(tmp_path / "report"), "--fcn-score", segmenter_dir])  # fmt: skip
    assert exc.value.code == 2
    assert "are not Cityscapes colour label maps" in capsys.readouterr().err


@pytest.fixture(scope="module")
def judge_dir(segmenter_dir, tmp_path_factory):
    """A stand-in for the frozen Cityscapes judge: a SavedModel reading 64x64 photos (the run's are 32x32).

    It is the tiny trained segmenter behind a resize, so its answers carry information about the photos.
    """
    class Judge(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = keras.models.load_model(os.path.join(segmenter_dir, segmenter.MODEL_FILE))

        @tf.function(input_signature=[tf.TensorSpec([None, 64, 64, 3], tf.float32, name="photos")])
        def serve(self, photos):
            logits = self.model(tf.image.resize(photos, (32, 32)), training=False)
            return {"logits": tf.image.resize(logits, (64, 64), method="nearest")}

    judge = Judge()
    out = str(tmp_path_factory.mktemp("judge"))
    tf.saved_model.save(judge, out, signatures={"serving_default": judge.serve})
    return out


def test_fcn_score_with_a_saved_model_judge_resizes_both_photo_sets_alike(run_dir, judge_dir, tmp_path, capsys):
    report = str(tmp_path / "report")
    assert evaluate_script.main(["--checkpoint-dir", run_dir, "--report-dir", report, "--batch-size", "3",
                                 "--fcn-score", judge_dir]) == 0  # fmt: skip
    metrics = _json(os.path.join(report, "metrics.json"))
    # The last stdout line is metrics.json as one JSON line, for scripts.
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == metrics
    fcn = metrics["fcn_score"]
    assert fcn["segmenter"] == judge_dir and "32x32 -> 64x64" in fcn["resize"]
    for key in ("pixel_acc", "class_acc", "class_iou"):
        assert fcn["ratio"][key] == pytest.approx(fcn["generated"][key] / fcn["real"][key])

    # The ceiling, recomputed by hand: real photos at the run's size (as G sees them), up to 64 for the judge,
    # against label ids read at 64 by nearest neighbour.
    judge = tf.saved_model.load(judge_dir).signatures["serving_default"]
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for path in list_images(metrics["data_dir"], "val"):
        pair = tf.io.decode_jpeg(tf.io.read_file(path))
        label, photo = pair[:, pair.shape[1] // 2 :], pair[:, : pair.shape[1] // 2]  # BtoA: the label map is B (right)
        real = tf.image.resize(tf.image.resize(tf.cast(photo, tf.float32) / 127.5 - 1, (32, 32)), (64, 64))
        predicted = tf.argmax(judge(photos=real[None])["logits"], -1)
        confusion += metrics_module.confusion_matrix(segmenter.label_ids(label, (64, 64)), predicted, NUM_CLASSES).numpy()
    assert fcn["real"] == pytest.approx(metrics_module.segmentation_scores(confusion), abs=1e-6)


def test_fcn_score_refuses_a_saved_model_that_is_not_a_segmenter(run_dir, tmp_path, capsys):
    module = tf.Module()
    module.serve = tf.function(lambda images: {"images": images}, input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "not_a_judge"), signatures={"serving_default": module.serve})
    with pytest.raises(SystemExit) as exc:
        evaluate_script.main(["--checkpoint-dir", run_dir, "--report-dir", str(tmp_path / "report"),
                              "--fcn-score", str(tmp_path / "not_a_judge")])  # fmt: skip
    assert exc.value.code == 2
    assert "not a segmenter judge" in capsys.readouterr().err
