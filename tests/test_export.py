"""Export: train.py -> export.py end to end; every format's numbers checked against the Keras generator."""

import json
import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf

import export as export_script
import pix2pix_tf.deploy.savedmodel as export_module
import train as train_script
from pix2pix_tf.config import UsageError
from pix2pix_tf.core.networks import build_generator
from pix2pix_tf.data.pairs import list_images, load_pair, resize_pair, to_float, to_uint8
from pix2pix_tf.deploy.export import fidelity_warnings
from pix2pix_tf.deploy.litert import LiteRTGenerator
from pix2pix_tf.deploy.savedmodel import export_saved_model, next_version
from pix2pix_tf.deploy.tflite import TFLITE_MODES, TFLiteUnsupportedError, convert_tflite
from pix2pix_tf.inference import inference_generator, translate_own_size
from pix2pix_tf.predict import main as predict_main
from pix2pix_tf.run import load_generator

# Tolerances vs the Keras generator on held-out inputs (outputs in [-1, 1]).
SAVEDMODEL_MAX_ERR, FP32_MAX_ERR, FP16_MAX_ERR = 1e-5, 1e-4, 2e-2
# Measured on this tiny trained model (2 epochs, ngf 8, 32x32): int8 dynamic 116 dB, int8 full 59 dB (BENCHMARKS.md).
INT8_MIN_PSNR, INT8_FULL_MIN_PSNR = 60.0, 40.0
# That model paints near-grey (output std 0.004), which quantization hardly disturbs: an int8_full calibrated on
# inputs scaled to [-0.1, 0.1] still reads 55.4 dB there, above its floor. These floors hold on a model whose
# outputs span the targets' colours (`fitted`, output std 0.43), measured there at fp16 97.9 dB, int8 73.0 dB and
# int8_full 53.4 dB; the same broken calibration reads 17.6 dB on it.
FITTED_MIN_PSNR = {"tflite_fp16": 80.0, "tflite_int8": 60.0, "tflite_int8_full": 45.0}


@pytest.fixture(scope="module")
def exported(pair_dir, tmp_path_factory):
    """A tiny run trained by train.py, exported by export.py with every format."""
    root = tmp_path_factory.mktemp("run")
    out = str(root / "outputs")
    assert train_script.main([
        "--data-dir", pair_dir, "--image-size", "32", "--batch-size", "4", "--generator-filters", "8",
        "--discriminator-filters", "8", "--epochs", "2", "--num-samples", "0", "--output-dir", out,
        "--log-file", str(root / "train.log"),
    ]) == 0
    export_dir = str(root / "exports")
    assert export_script.main(["--checkpoint-dir", os.path.join(out, "checkpoints"), "--export-dir", export_dir,
                               "--latency-runs", "1", "--resize-mode", "own"]) == 0
    generator = load_generator(os.path.join(out, "checkpoints")).generator
    files = list_images(pair_dir, "val")
    inputs = np.stack([resize_pair(*load_pair(tf.constant(f), "BtoA"), (32, 32))[0].numpy() for f in files])
    return {"dir": os.path.join(export_dir, "pix2pix"), "generator": generator, "inputs": inputs,
            "reference": generator(inputs, training=False).numpy(), "checkpoints": os.path.join(out, "checkpoints")}


def _psnr(a, b):
    return 10 * np.log10(4.0 / np.mean((a - b) ** 2))


def test_export_py_writes_every_artifact_and_the_report(exported):
    model_dir = exported["dir"]
    assert sorted(os.listdir(model_dir)) == ["1", "export_report.json"] + sorted(f"generator_{m}.tflite" for m in TFLITE_MODES)
    with open(os.path.join(model_dir, "export_report.json")) as f:
        report = json.load(f)
    assert report["model"]["image_size"] == [32, 32] and report["eval"]["images"] == 4
    assert report["eval"]["calibration_images"] == 12
    formats = report["formats"]
    assert set(formats) == {"keras", "savedmodel"} | {f"tflite_{m}" for m in TFLITE_MODES}
    for name, row in formats.items():
        assert row["latency_ms"] > 0, name
        if name != "keras":
            assert row["size_bytes"] > 0 and row["max_abs_error"] < 0.1, (name, row)
    assert formats["tflite_int8"]["size_bytes"] < 0.4 * formats["tflite_fp32"]["size_bytes"]


def test_savedmodel_float_signature_matches_keras(exported):
    loaded = tf.saved_model.load(os.path.join(exported["dir"], "1"))
    out = loaded.signatures["translate_float"](images=tf.constant(exported["inputs"]))["images"].numpy()
    assert np.max(np.abs(out - exported["reference"])) <= SAVEDMODEL_MAX_ERR


def test_uint8_signature_any_size_and_encoded_round_trip(exported):
    serve = tf.saved_model.load(os.path.join(exported["dir"], "1")).signatures
    images = np.random.default_rng(0).integers(0, 256, (2, 45, 70, 3), dtype=np.uint8)
    out = serve["serving_default"](images=tf.constant(images))["images"]
    assert out.dtype == tf.uint8 and out.shape == (2, 45, 70, 3)
    # Same result as the documented pipeline run outside the graph (own size: padded to 64x96, cropped), to one
    # uint8 level.
    net = inference_generator(exported["generator"])
    expected = to_uint8(translate_own_size(lambda x: net(x, training=False), to_float(images), 32))
    assert np.max(np.abs(out.numpy().astype(int) - expected.numpy().astype(int))) <= 1

    jpeg = tf.io.encode_jpeg(images[0], quality=95)
    png = serve["translate_encoded"](image_bytes=tf.stack([jpeg, tf.io.encode_png(images[1])]))["image_bytes"].numpy()
    decoded = [tf.io.decode_png(p).numpy() for p in png]
    assert [d.shape for d in decoded] == [(45, 70, 3), (45, 70, 3)]
    from_jpeg = serve["serving_default"](images=tf.io.decode_jpeg(jpeg)[tf.newaxis])["images"][0].numpy()
    assert np.max(np.abs(decoded[0].astype(int) - from_jpeg.astype(int))) <= 1
    assert np.array_equal(decoded[1], out[1].numpy())


def test_saved_model_cli_lists_the_three_signatures(exported):
    shown = subprocess.run(["saved_model_cli", "show", "--dir", os.path.join(exported["dir"], "1"), "--all"],
                           capture_output=True, text=True, check=True).stdout
    blocks = {b.split("'")[0]: b for b in shown.split("signature_def['")[1:]}
    assert {"serving_default", "translate_encoded", "translate_float"} <= set(blocks)
    assert "dtype: DT_UINT8" in blocks["serving_default"] and "shape: (-1, -1, -1, 3)" in blocks["serving_default"]
    assert blocks["translate_encoded"].count("dtype: DT_STRING") == 2 and "shape: (-1)" in blocks["translate_encoded"]
    assert blocks["translate_float"].count("shape: (-1, 32, 32, 3)") == 2 and "DT_FLOAT" in blocks["translate_float"]


def test_tflite_on_litert_matches_keras(exported):
    results = {}
    for mode in TFLITE_MODES:
        out = LiteRTGenerator(os.path.join(exported["dir"], f"generator_{mode}.tflite"))(exported["inputs"])
        assert out.shape == exported["reference"].shape and np.all(np.isfinite(out)), mode
        results[mode] = (np.max(np.abs(out - exported["reference"])), _psnr(out, exported["reference"]))
    assert results["fp32"][0] <= FP32_MAX_ERR, results
    assert results["fp16"][0] <= FP16_MAX_ERR, results
    assert results["int8"][1] >= INT8_MIN_PSNR, results
    assert results["int8_full"][1] >= INT8_FULL_MIN_PSNR, results


@pytest.fixture(scope="module")
def fitted(pair_dir, tmp_path_factory):
    """A tiny generator fitted with L1 for 24 steps, saved as .keras: its outputs take the photos' colours."""
    keras.utils.set_random_seed(0)

    def halves(split):
        pairs = [resize_pair(*load_pair(tf.constant(f), "BtoA"), (32, 32)) for f in list_images(pair_dir, split)]
        return np.stack([x.numpy() for x, _ in pairs]), np.stack([y.numpy() for _, y in pairs])

    generator = build_generator((32, 32), filters=8, depth=5)
    generator.compile(optimizer=keras.optimizers.Adam(1e-2, beta_1=0.5), loss="mae")
    generator.fit(*halves("train"), batch_size=4, epochs=8, verbose=0)
    path = str(tmp_path_factory.mktemp("fitted") / "generator.keras")
    generator.save(path)
    return {"path": path, "outputs": generator(halves("val")[0], training=False).numpy()}


def test_quantized_fidelity_on_a_model_that_is_not_grey_and_the_export_warning(fitted, pair_dir, tmp_path, capsys):
    assert fitted["outputs"].std() > 0.3  # the 2-epoch run's outputs: std 0.004
    argv = ["--keras-file", fitted["path"], "--eval-dir", os.path.join(pair_dir, "val"), "--calibration-dir",
            os.path.join(pair_dir, "train"), "--formats", "fp16,int8,int8_full", "--latency-runs", "1",
            "--export-dir", str(tmp_path), "--psnr-floor", "60"]  # fmt: skip
    assert export_script.main(argv) == 0
    with open(tmp_path / "pix2pix" / "export_report.json") as f:
        report = json.load(f)
    psnr = {name: report["formats"][name]["psnr_db"] for name in FITTED_MIN_PSNR}
    assert all(psnr[name] >= floor for name, floor in FITTED_MIN_PSNR.items()), psnr
    # Raised to 60 dB, the floor sits between int8_full and int8 here: one warning, in the log, on the console and
    # in the report, naming the fp16 file as the way out.
    assert report["fidelity"]["psnr_floor_db"] == 60 and len(report["fidelity"]["warnings"]) == 1, report["fidelity"]
    warning = report["fidelity"]["warnings"][0]
    assert warning.startswith(f"tflite_int8_full reads {psnr['tflite_int8_full']:.1f} dB PSNR")
    assert "under the 60 dB floor" in warning
    assert f"ship generator_fp16.tflite ({psnr['tflite_fp16']:.1f} dB here)" in warning
    captured = capsys.readouterr()
    assert f"WARNING {warning}" in captured.out and f"WARNING: {warning}" in captured.err
    assert fidelity_warnings(report["formats"], 30.0) == []  # the default floor: this model is fine in every format


def test_export_chooses_the_resize_mode_the_training_size_needs(exported, pair_dir, tmp_path, capsys):
    # Trained at 32x32 on 64 px pairs (the CPU recipe's 128 on 256, in small): squash, logged.
    assert export_script.main(["--checkpoint-dir", exported["checkpoints"], "--export-dir", str(tmp_path / "a"),
                               "--formats", "savedmodel", "--latency-runs", "1"]) == 0  # fmt: skip
    with open(tmp_path / "a" / "pix2pix" / "1" / "assets.extra" / "pix2pix.json") as f:
        assert json.load(f)["resize_mode"] == "squash"
    out = capsys.readouterr().out
    assert "--resize-mode squash, chosen from the run's data (pass --resize-mode to choose): a held-out input is " \
           "64x64 px, 2.0x the 32x32 the model was trained at" in out  # fmt: skip
    # A generator built for the data's own size: own.
    keras_file = str(tmp_path / "g64.keras")
    build_generator((64, 64), filters=2, depth=6).save(keras_file)
    assert export_script.main(["--keras-file", keras_file, "--eval-dir", os.path.join(pair_dir, "val"), "--export-dir",
                               str(tmp_path / "b"), "--formats", "savedmodel", "--latency-runs", "1"]) == 0  # fmt: skip
    with open(tmp_path / "b" / "pix2pix" / "export_report.json") as f:
        assert json.load(f)["model"]["resize_mode"] == "own"
    assert "--resize-mode own, chosen from the run's data" in capsys.readouterr().out


def test_predict_cli_backends_agree(exported, pair_dir, tmp_path):
    model_dir = exported["dir"]
    runs = {  # own size (64x64 inputs through a 32 px model): checkpoint and SavedModel; squash: checkpoint and TFLite
        "checkpoint": ["--checkpoint-dir", exported["checkpoints"]],
        "savedmodel": ["--model", model_dir],
        "checkpoint-squash": ["--backend", "checkpoint", "--checkpoint-dir", exported["checkpoints"], "--resize-mode", "squash"],
        "tflite": ["--model", os.path.join(model_dir, "generator_fp32.tflite")],
    }
    outputs = {}
    for name, flags in runs.items():
        out_dir = str(tmp_path / name)
        backend = [] if "--backend" in flags else ["--backend", name]
        assert predict_main([os.path.join(pair_dir, "val"), "--pairs", "BtoA", "--side-by-side", *backend,
                             "--output-dir", out_dir] + flags) == 0
        outputs[name] = [tf.io.decode_png(tf.io.read_file(os.path.join(out_dir, f))).numpy() for f in sorted(os.listdir(out_dir))]
    assert len(outputs["checkpoint"]) == 4 and outputs["checkpoint"][0].shape == (64, 192, 3)  # input | output | target
    for reference, backend in (("checkpoint", "savedmodel"), ("checkpoint-squash", "tflite")):
        for a, b in zip(outputs[reference], outputs[backend]):
            assert np.max(np.abs(a.astype(int) - b.astype(int))) <= 1, backend
    own, squashed = np.stack(outputs["checkpoint"])[:, :, 64:128], np.stack(outputs["checkpoint-squash"])[:, :, 64:128]
    assert not np.array_equal(own, squashed)  # the two modes are different paths (this 2-epoch net paints near-grey)


def test_export_records_the_modes_and_predict_checks_them(exported, pair_dir, tmp_path, capsys):
    with open(os.path.join(exported["dir"], "export_report.json")) as f:
        model = json.load(f)["model"]
    assert (model["test_mode"], model["resize_mode"], model["size_multiple"]) == ("eval", "own", 32)
    assert model["max_pixels"] == 2048 * 2048 and model["image_size"] == [32, 32]
    inputs = [os.path.join(pair_dir, "val"), "--pairs", "BtoA", "--output-dir", str(tmp_path / "out")]
    outputs = []
    for mode in ("paper", "paper", "eval"):  # checkpoint backend: any mode
        out_dir = str(tmp_path / f"{mode}{len(outputs)}")
        assert predict_main(inputs[:3] + ["--output-dir", out_dir, "--checkpoint-dir", exported["checkpoints"],
                                          "--test-mode", mode]) == 0  # fmt: skip
        # 64 px inputs to a 32 px model at their own size: warned once per run, not once per image.
        assert capsys.readouterr().err.count("64x64 px, 2.0x the 32x32 the model was trained at") == 1
        outputs.append(np.stack([tf.io.decode_png(tf.io.read_file(os.path.join(out_dir, f))).numpy()
                                 for f in sorted(os.listdir(out_dir))]))  # fmt: skip
    assert not np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[0], outputs[2])
    tflite = os.path.join(exported["dir"], "generator_fp32.tflite")
    for flags, message in [
        (["--backend", "savedmodel", "--model", exported["dir"], "--test-mode", "paper"], "exported with --test-mode eval, not paper"),
        (["--backend", "tflite", "--model", tflite, "--resize-mode", "own"], "fixed input size: use --resize-mode squash"),
        (["--backend", "tflite", "--model", tflite, "--test-mode", "paper"], "--test-mode eval only"),
        (["--backend", "serving-rest", "--resize-mode", "own"], "do not apply to --backend serving-rest"),
        (["--test-mode", "train"], "invalid choice: 'train'"),
        (["--resize-mode", "crop"], "invalid choice: 'crop'"),
    ]:
        with pytest.raises(SystemExit) as exc:
            predict_main(inputs + flags)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err and "Traceback" not in err, (flags, err)
    # An input over the own-size cap is skipped, named with the reason; the run then exits 1, not 2.
    assert predict_main(inputs + ["--checkpoint-dir", exported["checkpoints"], "--max-pixels", "3000"]) == 1
    err = capsys.readouterr().err
    assert "00001.jpg: the image is 64x64 px" in err and "Traceback" not in err, err


def test_export_in_paper_mode_writes_the_savedmodel_and_explains_the_missing_tflite(exported, tmp_path):
    export_dir = str(tmp_path / "exports")
    assert export_script.main(["--checkpoint-dir", exported["checkpoints"], "--export-dir", export_dir, "--test-mode", "paper",
                               "--formats", "savedmodel,fp32", "--latency-runs", "1"]) == 0
    model_dir = os.path.join(export_dir, "pix2pix")
    assert sorted(os.listdir(model_dir)) == ["1", "export_report.json"]  # no .tflite
    with open(os.path.join(model_dir, "export_report.json")) as f:
        report = json.load(f)
    assert report["model"]["test_mode"] == "paper"
    assert "TFLite cannot run --test-mode paper" in report["formats"]["tflite_fp32"]["error"]
    # Compared with the Keras paper-mode twin seeded like the export: the same masks, so float rounding only.
    assert report["formats"]["savedmodel"]["max_abs_error"] <= SAVEDMODEL_MAX_ERR
    serve = tf.saved_model.load(os.path.join(model_dir, "1")).signatures["translate_float"]
    first, second = (serve(images=tf.constant(exported["inputs"]))["images"].numpy() for _ in range(2))
    assert np.abs(first - second).max() > 1e-3  # dropout on: every call differs
    assert np.abs(first - exported["reference"]).max() > 1e-3  # and it is not the eval-mode generator
    with pytest.raises(SystemExit) as exc:  # nothing but TFLite asked for: nothing can be written
        export_script.main(["--checkpoint-dir", exported["checkpoints"], "--export-dir", export_dir, "--test-mode", "paper",
                            "--formats", "fp32"])
    assert exc.value.code == 2


def test_tflite_converter_refuses_paper_mode_with_a_clear_error():
    with pytest.raises(TFLiteUnsupportedError, match="TFLite cannot run --test-mode paper.*StatelessRandomUniformV2"):
        convert_tflite(build_generator((32, 32), filters=4, depth=5), "fp32", test_mode="paper")


def test_export_is_atomic_and_never_overwrites_silently(tmp_path, monkeypatch):
    generator = build_generator((32, 32), filters=2, depth=2)
    base = str(tmp_path / "exports")

    def crash(generator, path, **modes):
        os.makedirs(os.path.join(path, "variables"))  # half written, then the process "dies"
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(export_module, "write_serving_savedmodel", crash)
        with pytest.raises(KeyboardInterrupt):
            export_saved_model(generator, base)
    assert os.listdir(os.path.join(base, "pix2pix")) == []

    assert export_saved_model(generator, base).endswith(os.path.join("pix2pix", "1"))
    with pytest.raises(UsageError, match="--overwrite"):
        export_saved_model(generator, base, version=1)
    assert export_saved_model(generator, base, version=1, overwrite=True).endswith("1")
    assert os.listdir(os.path.join(base, "pix2pix")) == ["1"]
    for name in ("2", "7", "tmp", ".tmp-9-x"):
        os.makedirs(os.path.join(base, "pix2pix", name))
    assert next_version(os.path.join(base, "pix2pix")) == 8


def test_export_py_refuses_to_replace_outputs_without_overwrite(exported, capsys):
    export_dir = os.path.dirname(exported["dir"])
    with pytest.raises(SystemExit) as exc:
        export_script.main(["--checkpoint-dir", exported["checkpoints"], "--export-dir", export_dir])
    assert exc.value.code == 2 and "already exists: pass --overwrite" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(exported["dir"], "2"))  # refused before writing anything


def test_converter_rejects_unknown_modes_and_uncalibrated_int8():
    generator = build_generator((32, 32), filters=4, depth=5)
    with pytest.raises(ValueError, match="unknown TFLite mode"):
        convert_tflite(generator, "int4")
    with pytest.raises(ValueError, match="representative"):
        convert_tflite(generator, "int8_full")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--checkpoint-dir", "/no/such/run/checkpoints"], "config.json not found"),
        (["--formats", "savedmodel,coreml"], "--formats"),
        (["--keras-file", "/no/such.keras"], "does not exist"),
        (["--test-mode", "train"], "invalid choice: 'train'"),
        (["--resize-mode", "crop"], "invalid choice: 'crop'"),
        (["--max-pixels", "0"], "--max-pixels is out of range"),
        (["--psnr-floor", "-1"], "--psnr-floor is out of range"),
    ],
)
def test_export_cli_errors_exit_2_with_one_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        export_script.main(argv + ["--export-dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
