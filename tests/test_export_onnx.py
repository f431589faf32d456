"""export.py --formats onnx: the generator through tf2onnx, run on ONNX Runtime, checked against Keras."""

import json
import os
import sys

import keras
import numpy as np
import pytest

import export as export_script
from pix2pix_tf.config import UsageError
from pix2pix_tf.core.networks import build_generator
from pix2pix_tf.deploy.export import ExportConfig
from pix2pix_tf.deploy.onnx import ONNX_FILE, OnnxGenerator, convert_onnx
from pix2pix_tf.tasks import PairedTask

# Measured: 9e-9 on a 32 px generator, 8e-8 on the paper's 256 px one (BENCHMARKS.md); float32 re-association only.
ONNX_MAX_ERR = 1e-5


def _generator(input_channels=3, output_channels=3) -> keras.Model:
    """A tiny generator with non-trivial BatchNorm statistics, so inference-mode BatchNorm is exercised."""
    keras.utils.set_random_seed(3)
    generator = build_generator((32, 32), input_channels, output_channels, filters=4, depth=5)
    rng = np.random.default_rng(0)
    for v in generator.variables:
        if "moving_mean" in v.path:
            v.assign(rng.normal(0, 0.1, v.shape).astype("float32"))
        elif "moving_variance" in v.path:
            v.assign(rng.uniform(0.5, 2.0, v.shape).astype("float32"))
    return generator


@pytest.fixture(scope="module")
def onnx_export(pair_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    keras_file = str(root / "generator.keras")
    generator = _generator()
    generator.save(keras_file)
    export_dir = str(root / "exports")
    argv = ["--keras-file", keras_file, "--export-dir", export_dir, "--formats", "savedmodel,fp32,onnx",
            "--eval-dir", os.path.join(pair_dir, "val"), "--eval-count", "4", "--latency-runs", "1"]
    assert export_script.main(argv) == 0
    return {"dir": os.path.join(export_dir, "pix2pix"), "generator": generator, "argv": argv,
            "inputs": PairedTask().read_inputs(os.path.join(pair_dir, "val"), "BtoA", (32, 32), 4)}


def test_export_py_writes_onnx_and_its_fidelity_row(onnx_export):
    model_dir = onnx_export["dir"]
    assert sorted(os.listdir(model_dir)) == ["1", "export_report.json", ONNX_FILE, "generator_fp32.tflite"]
    with open(os.path.join(model_dir, "export_report.json")) as f:
        row = json.load(f)["formats"]["onnx"]
    assert row["path"] == os.path.join(model_dir, ONNX_FILE) and row["size_bytes"] == os.path.getsize(row["path"])
    assert row["max_abs_error"] <= ONNX_MAX_ERR and (row["psnr_db"] is None or row["psnr_db"] > 100)


def test_onnx_runtime_matches_keras_at_any_batch(onnx_export):
    runner = OnnxGenerator(os.path.join(onnx_export["dir"], ONNX_FILE))
    assert runner.image_size == (32, 32)
    inputs = onnx_export["inputs"]
    reference = onnx_export["generator"](inputs, training=False).numpy()
    for batch in (inputs[:1], inputs):  # the batch dimension stays dynamic
        out = runner(batch)
        assert out.shape == (len(batch), 32, 32, 3) and out.dtype == np.float32
        assert np.max(np.abs(out - reference[: len(batch)])) <= ONNX_MAX_ERR


def test_onnx_colorizer_l_to_ab(tmp_path):
    generator = _generator(input_channels=1, output_channels=2)
    path = tmp_path / "color.onnx"
    path.write_bytes(convert_onnx(generator))
    inputs = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)
    out = OnnxGenerator(str(path))(inputs)
    assert out.shape == (2, 32, 32, 2)
    assert np.max(np.abs(out - generator(inputs, training=False).numpy())) <= ONNX_MAX_ERR


def test_export_py_refuses_to_replace_onnx_without_overwrite(onnx_export, capsys):
    path = os.path.join(onnx_export["dir"], ONNX_FILE)
    before = os.path.getmtime(path)
    with pytest.raises(SystemExit) as exc:
        export_script.main([*onnx_export["argv"][:5], "onnx", *onnx_export["argv"][6:]])
    assert exc.value.code == 2 and f"{path} already exists: pass --overwrite" in capsys.readouterr().err
    assert os.path.getmtime(path) == before


def test_onnx_without_the_extra_names_the_install_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the [onnx] extra were not installed
    with pytest.raises(UsageError, match=r'^--formats onnx needs onnxruntime, which is not installed: pip install "pix2pix_tf\[onnx\]"$'):
        ExportConfig(formats="savedmodel,onnx")
    with pytest.raises(SystemExit) as exc:
        export_script.main(["--formats", "onnx", "--export-dir", str(tmp_path / "exports")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and 'pip install "pix2pix_tf[onnx]"' in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "exports")


def test_onnx_refuses_the_paper_test_mode(tmp_path):
    # The ONNX file holds the eval-mode graph; a paper-mode report row would compare two different models.
    with pytest.raises(UsageError, match="--test-mode eval"):
        ExportConfig(keras_file=str(tmp_path / "g.keras"), formats="savedmodel,onnx", test_mode="paper")
