"""Deployable forms of a trained generator: a SavedModel in TF Serving's layout and TFLite flatbuffers (ONNX: onnx_export)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from ..tasks import colorization
from ..tasks.colorization import as_rgb, is_colorizer
from ..config import TrainConfig, UsageError, add_config_flags, config_from_args, prog_name, read_run_config
from ..data.pairs import to_channels, to_float, to_uint8
from ..files import write_json
from ..inference import MAX_PIXELS, RESIZE_MODES, inference_generator, size_multiple, translate_own_size
from ..core.networks import build_generator

# Signature names and tensor keys: the contract with every client (TF Serving, predict.py, the demo).
# TF Serving's REST API base64-encodes string outputs whose key ends in "_bytes".
SIGNATURES = ("serving_default", "translate_encoded", "translate_float")
TFLITE_MODES = ("fp32", "fp16", "int8", "int8_full")
DEFAULT_FORMATS = ("savedmodel", *TFLITE_MODES)
FORMATS = (*DEFAULT_FORMATS, "onnx")  # onnx is opt-in: it needs the [onnx] extra (tf2onnx, onnxruntime)
METADATA_FILE = os.path.join("assets.extra", "pix2pix.json")  # the modes an export's signatures were written with


def model_size(generator: keras.Model) -> tuple[int, int]:
    """(height, width) the generator was built for."""
    return tuple(int(side) for side in generator.input_shape[1:3])


def preprocess(images: tf.Tensor, size: tuple[int, int], channels: int = 3) -> tf.Tensor:
    """uint8 [N, h, w, C] of any size -> float32 [-1, 1] at the model size (bilinear, antialiased when shrinking).

    Gray, RGB and RGBA inputs all work: they are made RGB, then gray when the model takes 1 channel.
    """
    return tf.image.resize(to_float(to_channels(as_rgb(images), channels)), size, antialias=True)


def postprocess(outputs: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Generator output [-1, 1] -> uint8 at `size` (the caller's original height, width)."""
    return to_uint8(tf.image.resize(outputs, size, antialias=True))


def serving_functions(
    generator: keras.Model,
    test_mode: str = "eval",
    resize_mode: str = "own",
    max_pixels: int = MAX_PIXELS,
    seed: int | None = None,
) -> dict[str, tuple[Callable, list[tf.TensorSpec]]]:
    """The three endpoints, name -> (function, input signature); pre/post-processing lives in the graph.

    Args:
        generator: the trained Keras generator.
        test_mode: "eval" or "paper" (inference.TEST_MODES), for every endpoint.
        resize_mode: "own" translates each image at its own size (reflect-padded to a multiple of
            2^depth, cropped back), "squash" at the model size (resized there and back).
        max_pixels: own-size cap on an image's padded pixel count (a larger image is an error).
        seed: seeds the paper mode's dropout masks (inference.inference_generator).

    A colorizer (L -> ab) gets colorization.serving_functions: the same names, taking gray or RGB
    images and returning the colorized RGB.
    """
    if resize_mode not in RESIZE_MODES:
        raise UsageError(f"--resize-mode {resize_mode!r}: choose one of {', '.join(RESIZE_MODES)}")
    net = inference_generator(generator, test_mode, seed=seed)  # any size, shares the generator's weights
    if is_colorizer(generator):
        return colorization.serving_functions(net, model_size(generator), resize_mode, max_pixels)
    size, channels, multiple = model_size(generator), generator.input_shape[-1], size_multiple(generator)

    def run(x):
        return net(x, training=False)

    def translate(images):  # uint8 [N, h, w, C] -> uint8 [N, h, w, Cout]
        if resize_mode == "squash":
            return postprocess(run(preprocess(images, size, channels)), tf.shape(images)[1:3])
        return to_uint8(translate_own_size(run, to_float(to_channels(as_rgb(images), channels)), multiple, max_pixels))

    def translate_images(images):
        # A loaded signature does not enforce its TensorSpec: say what is wrong with the input rather
        # than fail inside the first conv. The rank needs EnsureShape: an assert on tf.rank is folded
        # away using the declared rank, and a rank-3 batch would then abort the process in oneDNN's conv.
        images = tf.ensure_shape(images, (None, None, None, None))
        tf.debugging.assert_equal(
            tf.reduce_any(tf.equal(tf.shape(images)[-1], [1, 2, 3, 4])), True,
            message="images must be uint8 [batch, height, width, C] with C = 1 (gray), 2 (gray+alpha), 3 (RGB) "
            "or 4 (RGBA); or send encoded files to translate_encoded",
        )
        return {"images": translate(images)}

    def translate_encoded(image_bytes):
        def decode(data):
            # channels=3: grayscale and RGBA files become RGB; PNG and JPEG both decode here.
            return tf.io.decode_image(data, channels=3, expand_animations=False)

        if resize_mode == "own":  # images differ in size: one generator call each

            def own(data):
                return tf.io.encode_png(translate(decode(data)[tf.newaxis])[0])

            return {"image_bytes": tf.map_fn(own, image_bytes, fn_output_signature=tf.TensorSpec((), tf.string))}

        def squash(data):
            image = decode(data)
            return preprocess(image[tf.newaxis], size, channels)[0], tf.shape(image)[:2]

        inputs, sizes = tf.map_fn(
            squash, image_bytes,
            fn_output_signature=(tf.TensorSpec((*size, channels), tf.float32), tf.TensorSpec((2,), tf.int32)),
        )  # [N, H, W, channels], [N, 2]: one batched generator call at the model size
        outputs = run(inputs)
        encoded = tf.map_fn(
            lambda args: tf.io.encode_png(postprocess(args[0][tf.newaxis], args[1])[0]),
            (outputs, sizes), fn_output_signature=tf.TensorSpec((), tf.string),
        )
        return {"image_bytes": encoded}

    def translate_float(images):
        return {"images": run(tf.ensure_shape(images, (None, *size, channels)))}  # checked, as in translate_images

    return {
        "serving_default": (translate_images, [tf.TensorSpec((None, None, None, None), tf.uint8, name="images")]),
        "translate_encoded": (translate_encoded, [tf.TensorSpec((None,), tf.string, name="image_bytes")]),
        "translate_float": (translate_float, [tf.TensorSpec((None, *size, channels), tf.float32, name="images")]),
    }


def write_serving_savedmodel(
    generator: keras.Model,
    path: str,
    test_mode: str = "eval",
    resize_mode: str = "own",
    max_pixels: int = MAX_PIXELS,
    seed: int | None = None,
) -> None:
    """A SavedModel at `path` with the three signatures and the generator's variables, stored once.

    Plain `tf.saved_model.save`: Keras' ExportArchive stores every variable twice (under
    `variables/` and `_all_variables/`), doubling the size of a 218 MB generator. The modes are
    written to `assets.extra/pix2pix.json` (TF Serving ignores that folder) for predict.py and the demo.
    """
    functions = serving_functions(generator, test_mode, resize_mode, max_pixels, seed)
    module = tf.Module()
    module.generator = generator  # tracked, so the signatures' captured variables are saved with it
    signatures = {
        name: tf.function(fn, input_signature=spec).get_concrete_function() for name, (fn, spec) in functions.items()
    }
    # The paper mode's dropout seed states are variables the signatures update; Keras leaves them untracked.
    states = {id(v): v for fn in signatures.values() for v in fn.variables if v.name.endswith("seed_generator_state:0")}
    module.dropout_states = list(states.values())
    tf.saved_model.save(module, path, signatures=signatures)
    write_json(os.path.join(path, METADATA_FILE), export_metadata(generator, test_mode, resize_mode, max_pixels))


def export_metadata(generator: keras.Model, test_mode: str, resize_mode: str, max_pixels: int) -> dict:
    """What a SavedModel's signatures do, as recorded next to it (and in export_report.json)."""
    return {
        "test_mode": test_mode,
        "resize_mode": resize_mode,
        "max_pixels": max_pixels if resize_mode == "own" else None,
        "image_size": list(model_size(generator)),
        "size_multiple": size_multiple(generator),
        "channels": [int(generator.input_shape[-1]), int(generator.output_shape[-1])],
    }


def read_metadata(saved_model_dir: str) -> dict:
    """The modes an export was written with; exports older than the modes were eval + squash."""
    path = os.path.join(saved_model_dir, METADATA_FILE)
    if not os.path.isfile(path):
        return {"test_mode": "eval", "resize_mode": "squash"}
    with open(path) as f:
        return json.load(f)


def next_version(model_dir: str) -> int:
    """One more than the highest integer version under `model_dir` (1 when there is none)."""
    versions = [int(name) for name in os.listdir(model_dir) if name.isdigit()] if os.path.isdir(model_dir) else []
    return max(versions, default=0) + 1


def export_saved_model(
    generator: keras.Model,
    export_base: str,
    model_name: str = "pix2pix",
    version: int | None = None,
    overwrite: bool = False,
    test_mode: str = "eval",
    resize_mode: str = "own",
    max_pixels: int = MAX_PIXELS,
    seed: int | None = None,
) -> str:
    """Writes `export_base/model_name/version/` as a SavedModel with the three serving signatures.

    The version is written under a hidden temporary name and renamed into place at the end, so a
    TF Serving instance polling `export_base/model_name` never loads a half-written version.

    Args:
        generator: the Keras generator.
        export_base: the folder TF Serving's `--model_base_path` points above.
        model_name: subfolder name, TF Serving's MODEL_NAME.
        version: integer version; None takes the next free one.
        overwrite: replace an existing version instead of refusing.
        test_mode, resize_mode, max_pixels, seed: what the signatures do (see serving_functions).

    Returns:
        The version directory.

    Raises:
        UsageError: the version exists and `overwrite` is False, or the version is not a positive int.
    """
    model_dir = os.path.join(export_base, model_name)
    version = next_version(model_dir) if version is None else version
    if int(version) < 1:
        raise UsageError(f"--version must be a positive integer (TF Serving's layout), got {version}")
    final = os.path.join(model_dir, str(int(version)))
    if os.path.exists(final) and not overwrite:
        raise UsageError(f"{final} already exists: pass --overwrite to replace it, or choose another --version")
    os.makedirs(model_dir, exist_ok=True)
    # A dot name: TF Serving only loads all-digit folder names, so it ignores the one being written.
    tmp = tempfile.mkdtemp(dir=model_dir, prefix=f".tmp-{version}-")
    try:
        write_serving_savedmodel(
            generator, tmp, test_mode=test_mode, resize_mode=resize_mode, max_pixels=max_pixels, seed=seed
        )
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; a TF Serving running as another user must read it
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return final


class TFLiteUnsupportedError(RuntimeError):
    """The TFLite converter cannot express this generator (the paper mode's random dropout ops)."""


# The TFLite builtin runtime has no kernel for the stateless random ops behind Keras' dropout; they would
# need TF Select (Flex), which LiteRT's pip package does not ship.
PAPER_TFLITE_MESSAGE = (
    "TFLite cannot run --test-mode paper: its random dropout ops (StatelessRandomUniformV2) are not TFLite builtins "
    "(they would need TF Select/Flex); export TFLite with --test-mode eval"
)


def convert_tflite(
    generator: keras.Model, mode: str, representative: Iterable[np.ndarray] | None = None, test_mode: str = "eval"
) -> bytes:
    """Converts the generator (float32 [-1, 1] in and out, at the model size) to a TFLite flatbuffer.

    Modes: "fp32"; "fp16" (fp16 weights); "int8" (dynamic range: int8 weights, float activations);
    "int8_full" (int8 weights, activations and I/O, calibrated on `representative` float inputs [H, W, 3]).

    Raises:
        ValueError: unknown mode, or "int8_full" without representative inputs.
        TFLiteUnsupportedError: `test_mode` "paper" (see PAPER_TFLITE_MESSAGE).
    """
    return convert_tflite_modes(generator, [mode], representative, test_mode)[mode]


def convert_tflite_modes(
    generator: keras.Model,
    modes: Sequence[str],
    representative: Iterable[np.ndarray] | None = None,
    test_mode: str = "eval",
) -> dict[str, bytes]:
    """`convert_tflite` for several modes from one intermediate SavedModel; mode -> flatbuffer."""
    unknown = [mode for mode in modes if mode not in TFLITE_MODES]
    if unknown:
        raise ValueError(f"unknown TFLite mode {unknown[0]!r}: use one of {', '.join(TFLITE_MODES)}")
    samples = [np.asarray(x, np.float32) for x in (() if representative is None else representative)]
    if "int8_full" in modes and not samples:
        raise ValueError("int8_full needs representative inputs to calibrate activation ranges")
    if not modes:
        return {}
    net = inference_generator(generator, test_mode, any_size=False)  # TFLite takes one fixed input size
    # Keras' own model.export() + from_saved_model: a hand-made tf.Module concrete function can keep
    # READ_VARIABLE ops that produce NaN in the converted model.
    with tempfile.TemporaryDirectory() as tmp:
        net.export(tmp, format="tf_saved_model", verbose=False)
        flatbuffers = {}
        for mode in modes:
            try:
                flatbuffers[mode] = _configure(tf.lite.TFLiteConverter.from_saved_model(tmp), mode, samples).convert()
            except Exception as err:  # the converter's own error class is not public API
                if test_mode != "paper":
                    raise
                first_line = str(err).splitlines()[0][:200]
                raise TFLiteUnsupportedError(f"{PAPER_TFLITE_MESSAGE} (converter: {first_line})") from err
        return flatbuffers


def _configure(converter: tf.lite.TFLiteConverter, mode: str, samples: list[np.ndarray]) -> tf.lite.TFLiteConverter:
    if mode != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8_full":
        converter.representative_dataset = lambda: ([x[np.newaxis]] for x in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter


def config_for_checkpoints(checkpoint_dir: str) -> TrainConfig:
    """The run's TrainConfig from config.json next to the checkpoints folder (training.py writes it there)."""
    path = os.path.join(os.path.dirname(os.path.abspath(checkpoint_dir)), "config.json")
    if not os.path.exists(path):
        raise UsageError(f"{path} not found: --checkpoint-dir must be the checkpoints/ folder of a train.py output dir")
    return read_run_config(path)


def load_generator(checkpoint_dir: str = "", keras_file: str = "") -> tuple[keras.Model, TrainConfig | None]:
    """The generator from the latest checkpoint of a run (with the run's config) or from a `.keras` file.

    Raises:
        UsageError: no checkpoint / file there, or it does not match the architecture in config.json.
    """
    if keras_file:
        if not os.path.isfile(keras_file):
            raise UsageError(f"{keras_file} does not exist: --keras-file must be a .keras model file")
        # safe_mode refuses lambda layers and other deserialized code.
        return keras.saving.load_model(keras_file, compile=False, safe_mode=True), None
    config = config_for_checkpoints(checkpoint_dir)
    path = tf.train.latest_checkpoint(checkpoint_dir)
    if path is None:
        raise UsageError(f"no checkpoint in {checkpoint_dir}: train first (python train.py ...) or pass --checkpoint-dir")
    generator = build_generator(
        config.image_size, config.resolved_input_channels, config.resolved_output_channels,
        filters=config.generator_filters, depth=config.resolved_generator_depth, norm=config.norm,
    )
    try:
        # Only the generator is read; the discriminator and optimizer slots stay in the file.
        tf.train.Checkpoint(generator=generator).restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError) as err:
        raise UsageError(f"{path} does not match the generator described by config.json: {err}") from err
    return generator, config


def tflite_name(mode: str) -> str:
    return f"generator_{mode}.tflite"


def is_safe_model_name(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_.-]+", name)) and name not in (".", "..")


CLI_DESCRIPTION = """Export a trained pix2pix generator: SavedModel (TF Serving layout), TFLite fp32/fp16/int8, export_report.json.

    python export.py                                            # latest checkpoint of outputs/, into exports/pix2pix/
    python export.py --checkpoint-dir runs/city/checkpoints --export-dir exports --model-name city
    python export.py --keras-file generator.keras --eval-dir DATA/val --calibration-dir DATA/train
    python export.py --formats savedmodel,fp32 --version 3 --overwrite
    python export.py --formats savedmodel,onnx                  # ONNX needs: pip install 'pix2pix_tf[onnx]'
    python export.py --test-mode paper --model-name pix2pix-paper --formats savedmodel   # dropout on, per-image BN
    python export.py --resize-mode squash                       # signatures translate at the training size

`pix2pix-export` (installed with the package) and `python -m pix2pix_tf.export` take the same flags.
Writes EXPORT_DIR/MODEL_NAME/VERSION/ (SavedModel: serving_default, translate_encoded, translate_float),
EXPORT_DIR/MODEL_NAME/generator_{fp32,fp16,int8,int8_full}.tflite, EXPORT_DIR/MODEL_NAME/generator.onnx (when asked)
and EXPORT_DIR/MODEL_NAME/export_report.json.
"""


def main(argv: list[str] | None = None) -> int:
    """The export command: `pix2pix-export`, `python -m pix2pix_tf.export` or `python export.py`."""
    # export_report builds on this module, so it can only be imported once this one is.
    from .export import ExportConfig, run_export
    from ..train.loop import setup_logging

    parser = argparse.ArgumentParser(
        prog=prog_name("pix2pix_tf.export"), description=CLI_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_flags(parser, ExportConfig)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args, ExportConfig)
        setup_logging("")
        report = run_export(config)
    except UsageError as err:
        parser.error(str(err))  # one line, exit code 2
    print(json.dumps(report["formats"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
