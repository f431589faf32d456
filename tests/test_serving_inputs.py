"""Serving inputs and model files: malformed input is refused with an error saying what is wrong, an oversized
image before anything is allocated for it; no code is loaded."""

import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf.core.networks import build_generator
from pix2pix_tf.deploy.savedmodel import serving_functions, write_serving_savedmodel
from pix2pix_tf.inference import MAX_PIXELS, decode_within_cap, encoded_image_size


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny generator's SavedModel in each resize mode, at the default --max-pixels: mode -> version folder."""
    generator = build_generator((32, 32), filters=4, depth=5)
    paths = {mode: str(tmp_path_factory.mktemp(f"served-{mode}") / "1") for mode in ("own", "squash")}
    for mode, path in paths.items():
        write_serving_savedmodel(generator, path, resize_mode=mode)
    return paths


@pytest.fixture(scope="module")
def signatures(served):
    return tf.saved_model.load(served["own"]).signatures


@pytest.mark.parametrize("channels", [5, 6])
def test_uint8_signature_names_a_wrong_channel_count(signatures, channels):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be uint8 \[batch, height, width, C\]"):
        signatures["serving_default"](images=tf.zeros((1, 32, 32, channels), tf.uint8))


@pytest.mark.parametrize("channels", [1, 4])
def test_uint8_signature_converts_gray_and_rgba(signatures, channels):
    out = signatures["serving_default"](images=tf.zeros((1, 20, 24, channels), tf.uint8))["images"]
    assert out.shape == (1, 20, 24, 3) and out.dtype == tf.uint8


def test_uint8_signature_refuses_a_wrong_rank_and_dtype(signatures):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"not compatible with expected shape \[\?,\?,\?,\?\]"):
        signatures["serving_default"](images=tf.zeros((32, 32, 3), tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor"):
        signatures["serving_default"](images=tf.zeros((1, 32, 32, 3), tf.float32))


def test_encoded_signature_rejects_non_image_bytes_with_an_error(signatures):
    good = tf.io.encode_png(np.zeros((20, 30, 3), np.uint8))
    out = signatures["translate_encoded"](image_bytes=tf.stack([good]))["image_bytes"]
    assert tf.io.decode_png(out[0]).shape == (20, 30, 3)
    for data in (b"not an image", b"", good.numpy()[:20]):
        with pytest.raises(tf.errors.InvalidArgumentError, match="image|PNG|Invalid"):
            signatures["translate_encoded"](image_bytes=tf.constant([data]))


def _bmp(image: np.ndarray, top_down: bool = False) -> bytes:
    """A 24-bit BMP of uint8 RGB `image` (TensorFlow decodes BMP but has no encoder)."""
    height, width, _ = image.shape
    stride = (3 * width + 3) // 4 * 4  # rows are padded to 4 bytes
    rows = range(height) if top_down else reversed(range(height))  # a positive height stores the bottom row first
    pixels = b"".join(image[y, :, ::-1].tobytes().ljust(stride, b"\0") for y in rows)  # BGR
    signed_height = -height if top_down else height
    info = struct.pack("<IiiHHIIiiII", 40, width, signed_height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54) + info + pixels


def _blank_png(width: int, height: int) -> bytes:
    """A black grayscale PNG of any size, deflated row by row, so that a 10000x10000 one (97 KB) is never held
    decoded in this process (tf.io.encode_png would need the 100 MB of pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    deflate = zlib.compressobj(9)
    row = bytes(1 + width)  # filter type 0, then the pixels
    idat = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def oversized(tmp_path_factory):
    """Small files declaring huge images: a 10000x10000 PNG (97 KB) and an 8000x8000 JPEG (0.75 MB), both blank."""
    folder = tmp_path_factory.mktemp("oversized")
    files = {"png": folder / "big.png", "jpeg": folder / "big.jpg"}
    files["png"].write_bytes(_blank_png(10000, 10000))
    files["jpeg"].write_bytes(tf.io.encode_jpeg(tf.fill([8000, 8000, 1], tf.constant(128, tf.uint8))).numpy())
    return {name: str(path) for name, path in files.items()}


def test_encoded_image_size_reads_png_jpeg_and_bmp_headers_and_refuses_the_rest():
    image = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    accepted = {
        "png": tf.io.encode_png(image), "gray png": tf.io.encode_png(image[..., :1]),
        "16-bit png": tf.io.encode_png(tf.cast(image, tf.uint16) * 257), "jpeg": tf.io.encode_jpeg(image),
        "bmp": tf.constant(_bmp(image)), "top-down bmp": tf.constant(_bmp(image, top_down=True)),
    }  # fmt: skip
    for name, data in accepted.items():
        assert encoded_image_size(data).numpy().tolist() == [45, 70], name
        decoded = decode_within_cap(data, 45 * 70)  # exactly at the cap: accepted
        np.testing.assert_array_equal(decoded, tf.io.decode_image(data, channels=3, expand_animations=False), name)
    np.testing.assert_array_equal(decode_within_cap(accepted["bmp"], MAX_PIXELS), image)
    message = r"the image is 70x45 px, over the cap of 3149 pixels .* --max-pixels"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        decode_within_cap(accepted["png"], 45 * 70 - 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"multiple of 32: 96x64\), over the cap of 4000"):
        decode_within_cap(accepted["jpeg"], 4000, multiple=32)
    refused = {
        "gif": b"GIF89a" + struct.pack("<HH", 45, 70) + bytes(20), "webp": b"RIFF\0\0\0\0WEBPVP8 " + bytes(20),
        "text": b"not an image, whatever its length", "empty": b"", "short png": b"\x89PNG\r\n\x1a\n",
    }  # fmt: skip
    for name, data in refused.items():
        with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes must be PNG, JPEG or BMP files"):
            tf.function(decode_within_cap)(tf.constant(data), MAX_PIXELS)  # as in a signature: in a graph


def test_a_loaded_savedmodel_refuses_oversized_images_in_both_resize_modes(served, oversized):
    for resize_mode in ("own", "squash"):
        serve = tf.saved_model.load(served[resize_mode]).signatures
        for name, path in oversized.items():
            with open(path, "rb") as f:
                data = f.read()
            with pytest.raises(tf.errors.InvalidArgumentError, match=f"over the cap of {MAX_PIXELS} pixels") as err:
                serve["translate_encoded"](image_bytes=tf.constant([data]))
            assert "re-export with a larger --max-pixels" in err.value.message, (resize_mode, name)
        # uint8 tensors are held to the same cap before their float copies are made (2100x2100 gray: 4.4 MB).
        with pytest.raises(tf.errors.InvalidArgumentError, match="the image is 2100x2100 px"):
            serve["serving_default"](images=tf.zeros((1, 2100, 2100, 1), tf.uint8))
        small = tf.io.encode_png(tf.zeros((40, 50, 3), tf.uint8))
        small = serve["translate_encoded"](image_bytes=tf.stack([small]))
        assert tf.io.decode_png(small["image_bytes"][0]).shape == (40, 50, 3)  # an ordinary image still passes


@pytest.mark.parametrize("resize_mode", ["own", "squash"])
def test_a_colorizers_signatures_refuse_oversized_images_too(oversized, resize_mode):
    functions = serving_functions(build_generator((32, 32), 1, 2, filters=4, depth=5), resize_mode=resize_mode)
    with open(oversized["png"], "rb") as f:
        data = tf.constant([f.read()])
    with pytest.raises(tf.errors.InvalidArgumentError, match="the image is 10000x10000 px"):
        functions["translate_encoded"][0](data)
    with pytest.raises(tf.errors.InvalidArgumentError, match="the image is 2100x2100 px"):
        functions["serving_default"][0](tf.zeros((1, 2100, 2100, 1), tf.uint8))


# One request per fresh process: memory a request frees stays with the process's allocator and would serve the next
# one unseen. Warm-up calls load every kernel first. ru_maxrss is the peak resident memory, where every TensorFlow
# allocation shows; Linux restarts it from the current resident size on "5" to clear_refs, so the rise is the
# request's own (elsewhere the load's high-water mark stays and a rise can only read low).
MEASURE_PEAK = """
import json, resource, sys
import tensorflow as tf
model, image = sys.argv[1:]
serve = tf.saved_model.load(model).signatures["translate_encoded"]
small = tf.zeros((40, 40, 3), tf.uint8)
serve(image_bytes=tf.stack([tf.io.encode_png(small), tf.io.encode_jpeg(small)]))
with open(image, "rb") as f:
    data = tf.constant([f.read()])
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    serve(image_bytes=data)
    error = ""
except tf.errors.InvalidArgumentError as err:
    error = err.message
unit = 2**20 if sys.platform == "darwin" else 2**10  # ru_maxrss: bytes on macOS, KiB on Linux
rise = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * unit / 2**20
print(json.dumps({"peak_rise_mb": rise, "error": error}))
"""
# The code before the header check decoded first: these requests raised the peak by 4194 MB (own, the PNG, refused
# only after its float copy) and 1149 MB (squash, the JPEG, translated in full).
PEAK_RISE_MB = 64


@pytest.mark.parametrize("resize_mode,image", [("own", "png"), ("squash", "jpeg")])
def test_an_oversized_request_leaves_the_peak_memory_flat(served, oversized, resize_mode, image):
    result = subprocess.run([sys.executable, "-c", MEASURE_PEAK, served[resize_mode], oversized[image]],
                            capture_output=True, text=True, check=True, timeout=300)  # fmt: skip
    measured = json.loads(result.stdout.splitlines()[-1])
    assert f"over the cap of {MAX_PIXELS} pixels" in measured["error"], measured
    assert measured["peak_rise_mb"] < PEAK_RISE_MB, measured


def test_keras_files_load_in_safe_mode(tmp_path):
    # A .keras file can carry a Lambda layer's bytecode; safe_mode refuses to run it.
    import keras

    from pix2pix_tf.run import load_generator

    inputs = keras.Input((32, 32, 3))
    path = str(tmp_path / "lambda.keras")
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(path)
    with pytest.raises(ValueError, match="safe_mode"):
        load_generator(keras_file=path)
