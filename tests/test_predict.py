"""predict: distinct outputs for same-stem inputs, nothing overwritten silently, a bad file skipped and counted."""

import base64
import http.server
import json
import os
import threading

import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf.apps.predict import output_names
from pix2pix_tf.core.networks import build_generator
from pix2pix_tf.errors import UsageError
from pix2pix_tf.predict import main as predict_main

MAX_PIXELS = "3000"  # a 64x64 input (4096 px) is over it, 32x32 and 32x64 are not


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    """A tiny paired generator saved as .keras: predict's checkpoint backend without a training run."""
    path = str(tmp_path_factory.mktemp("model") / "generator.keras")
    build_generator((32, 32), filters=4, depth=5).save(path)
    return path


def _write(path, height, width, fmt="png"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    tf.io.write_file(str(path), tf.io.encode_png(image) if fmt == "png" else tf.io.encode_jpeg(image))


def _predict(inputs, out, keras_file, *flags):
    return predict_main([*map(str, inputs), "--output-dir", str(out), "--keras-file", keras_file,
                         "--max-pixels", MAX_PIXELS, *flags])


def _shape(path):
    return tuple(tf.io.decode_png(tf.io.read_file(str(path))).shape)


def _files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, names in os.walk(folder) for f in names)


def test_output_names_keep_folder_then_extension_when_stems_clash():
    assert output_names(["in/a/x.png", "in/b/x.jpg", "in/a/y.png"]) == ["a/x.png", "b/x.png", "y.png"]
    assert output_names(["d/x.png", "d/x.jpg", "d/z.png"]) == ["x.png.png", "x.jpg.png", "z.png"]
    assert output_names(["d/X.png", "e/x.png"]) == ["d/X.png", "e/x.png"]  # one name on macOS/Windows: kept apart
    with pytest.raises(UsageError, match=r"d/X.png and d/x.png would both be written to X.png.png: rename one"):
        output_names(["d/X.png", "d/x.png"])


def test_same_stem_inputs_get_distinct_outputs(keras_file, tmp_path, capsys):
    inputs = tmp_path / "in"
    _write(inputs / "a" / "x.png", 32, 32)
    _write(inputs / "b" / "x.jpg", 32, 64, "jpeg")
    _write(inputs / "b" / "x.png", 64, 32)
    _write(inputs / "b" / "y.png", 32, 32)
    out = tmp_path / "out"
    assert _predict([inputs / "a", inputs / "b"], out, keras_file) == 0
    # Each input's own output: told apart by its shape (outputs keep the input's size).
    assert {name: _shape(out / name) for name in _files(out)} == {
        "a/x.png": (32, 32, 3), "b/x.jpg.png": (32, 64, 3), "b/x.png.png": (64, 32, 3), "y.png": (32, 32, 3)
    }
    assert "wrote 4 images to" in capsys.readouterr().out


def test_existing_outputs_are_refused_before_any_work_unless_overwrite(keras_file, tmp_path, capsys):
    _write(tmp_path / "in" / "x.png", 32, 32)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "x.png").write_bytes(b"an earlier result")
    with pytest.raises(SystemExit) as exc:
        _predict([tmp_path / "in"], out, keras_file)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "1 of the 1 outputs exist already" in err and "--overwrite" in err, err
    assert (out / "x.png").read_bytes() == b"an earlier result"
    assert _predict([tmp_path / "in"], out, keras_file, "--overwrite") == 0
    assert _shape(out / "x.png") == (32, 32, 3)
    with pytest.raises(SystemExit) as exc:  # an input is never its own output, even with --overwrite
        _predict([out / "x.png"], out, keras_file, "--overwrite")
    assert exc.value.code == 2 and "is an input and would be written over" in capsys.readouterr().err


def test_corrupt_truncated_and_oversized_inputs_are_skipped_and_counted(keras_file, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    _write(inputs / "good.png", 32, 32)
    _write(inputs / "big.png", 64, 64)
    (inputs / "garbage.jpg").write_bytes(b"not an image at all")
    whole = tf.io.encode_png(np.full((32, 32, 3), 7, np.uint8)).numpy()
    (inputs / "truncated.png").write_bytes(whole[: len(whole) // 2])
    assert _predict([inputs], out, keras_file) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 3 and "Traceback" not in captured.err, captured.err  # one line per bad file
    reasons = dict(line.split(": ", 1) for line in lines)
    assert reasons[f"skipped {inputs / 'big.png'}"].startswith("the image is 64x64 px (padded 64x64), over the own-size cap")
    assert reasons[f"skipped {inputs / 'garbage.jpg'}"].startswith("not a readable image (Unknown image file format")
    assert reasons[f"skipped {inputs / 'truncated.png'}"].startswith("not a readable image (")
    assert captured.out.strip().endswith(f"wrote 1 images to {out} (translated 1, failed 3)")
    assert _files(out) == ["good.png"]  # no output, nor a temporary file, for the bad ones
    # Only bad files: nothing written, not even the output folder.
    assert _predict([inputs / "garbage.jpg"], tmp_path / "none", keras_file) == 1
    assert not (tmp_path / "none").exists()
    assert "(translated 0, failed 1)" in capsys.readouterr().out


class _EchoServing(http.server.BaseHTTPRequestHandler):
    """TF Serving's REST contract, answering each image with itself, refusing (400) any over 1000 bytes."""

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self.path.startswith("/v1/models/pix2pix"):
            return self._send(404, {"error": "Servable not found"})
        images = [base64.b64decode(row["b64"]) for row in request["instances"]]
        if any(len(image) > 1000 for image in images):
            return self._send(400, {"error": "image over the served cap"})
        self._send(200, {"predictions": [{"b64": base64.b64encode(image).decode()} for image in images]})

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_an_input_refused_by_tf_serving_is_skipped_but_an_unknown_model_stops(tmp_path, capsys):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoServing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        tf.io.write_file(str(tmp_path / "in" / "flat.png"), tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)))
        _write(tmp_path / "in" / "noise.png", 32, 32)  # incompressible: over 1000 bytes
        flags = ["--backend", "serving-rest", "--server", url]
        assert predict_main([str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), *flags]) == 1
        err = capsys.readouterr().err
        assert f"skipped {tmp_path / 'in' / 'noise.png'}: TF Serving refused it: " in err and "over the served cap" in err
        assert _files(tmp_path / "out") == ["flat.png"]
        with pytest.raises(SystemExit) as exc:  # every image would fail alike: one error, exit 2
            predict_main([str(tmp_path / "in"), "--output-dir", str(tmp_path / "out2"), *flags, "--model-name", "nope"])
        assert exc.value.code == 2 and "HTTP 404" in capsys.readouterr().err
    finally:
        server.shutdown()
        server.server_close()
