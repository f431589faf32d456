"""Deployable forms of a trained generator: a SavedModel in TF Serving's layout and TFLite flatbuffers."""

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

from . import colorization
from .colorization import as_rgb, is_colorizer
from .config import TrainConfig, UsageError, add_config_flags, config_from_args, prog_name, read_run_config
from .data import to_channels, to_float, to_uint8
from .models import build_generator

# Signature names and tensor keys: the contract with every client (TF Serving, predict.py, the demo).
# TF Serving's REST API base64-encodes string outputs whose key ends in "_bytes".
SIGNATURES = ("serving_default", "translate_encoded", "translate_float")
TFLITE_MODES = ("fp32", "fp16", "int8", "int8_full")
FORMATS = ("savedmodel", *TFLITE_MODES)


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


def serving_functions(generator: keras.Model) -> dict[str, tuple[Callable, list[tf.TensorSpec]]]:
    """The three endpoints, name -> (function, input signature); pre/post-processing lives in the graph.

    A colorizer (L -> ab) gets colorization.serving_functions: the same names, taking gray or RGB
    images and returning the colorized RGB.
    """
    if is_colorizer(generator):
        return colorization.serving_functions(generator)
    size, channels = model_size(generator), generator.input_shape[-1]

    def translate_images(images):
        # A loaded signature does not enforce its TensorSpec: say what is wrong with the input rather
        # than fail inside the first conv. (A wrong rank cannot be caught this way: TF folds the
        # check away using the declared rank, and the resize then reports "must be 4-dimensional".)
        tf.debugging.assert_equal(
            tf.reduce_any(tf.equal(tf.shape(images)[-1], [1, 2, 3, 4])), True,
            message="images must be uint8 [batch, height, width, C] with C = 1 (gray), 2 (gray+alpha), 3 (RGB) "
            "or 4 (RGBA); or send encoded files to translate_encoded",
        )
        outputs = generator(preprocess(images, size, channels), training=False)
        return {"images": postprocess(outputs, tf.shape(images)[1:3])}

    def translate_encoded(image_bytes):
        def decode(data):
            # channels=3: grayscale and RGBA files become RGB; PNG and JPEG both decode here.
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return preprocess(image[tf.newaxis], size, channels)[0], tf.shape(image)[:2]

        inputs, sizes = tf.map_fn(
            decode, image_bytes,
            fn_output_signature=(tf.TensorSpec((*size, channels), tf.float32), tf.TensorSpec((2,), tf.int32)),
        )  # [N, H, W, channels], [N, 2]
        outputs = generator(inputs, training=False)
        encoded = tf.map_fn(
            lambda args: tf.io.encode_png(postprocess(args[0][tf.newaxis], args[1])[0]),
            (outputs, sizes), fn_output_signature=tf.TensorSpec((), tf.string),
        )
        return {"image_bytes": encoded}

    def translate_float(images):
        return {"images": generator(images, training=False)}

    return {
        "serving_default": (translate_images, [tf.TensorSpec((None, None, None, None), tf.uint8, name="images")]),
        "translate_encoded": (translate_encoded, [tf.TensorSpec((None,), tf.string, name="image_bytes")]),
        "translate_float": (translate_float, [tf.TensorSpec((None, *size, channels), tf.float32, name="images")]),
    }


def write_serving_savedmodel(generator: keras.Model, path: str) -> None:
    """A SavedModel at `path` with the three signatures and the generator's variables, stored once.

    Plain `tf.saved_model.save`: Keras' ExportArchive stores every variable twice (under
    `variables/` and `_all_variables/`), doubling the size of a 218 MB generator.
    """
    module = tf.Module()
    module.generator = generator  # tracked, so the signatures' captured variables are saved with it
    signatures = {
        name: tf.function(fn, input_signature=spec).get_concrete_function()
        for name, (fn, spec) in serving_functions(generator).items()
    }
    tf.saved_model.save(module, path, signatures=signatures)


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
        write_serving_savedmodel(generator, tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; a TF Serving running as another user must read it
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return final


def convert_tflite(generator: keras.Model, mode: str, representative: Iterable[np.ndarray] | None = None) -> bytes:
    """Converts the generator (float32 [-1, 1] in and out, at the model size) to a TFLite flatbuffer.

    Modes: "fp32"; "fp16" (fp16 weights); "int8" (dynamic range: int8 weights, float activations);
    "int8_full" (int8 weights, activations and I/O, calibrated on `representative` float inputs [H, W, 3]).

    Raises:
        ValueError: unknown mode, or "int8_full" without representative inputs.
    """
    return convert_tflite_modes(generator, [mode], representative)[mode]


def convert_tflite_modes(
    generator: keras.Model, modes: Sequence[str], representative: Iterable[np.ndarray] | None = None
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
    # Keras' own model.export() + from_saved_model: a hand-made tf.Module concrete function can keep
    # READ_VARIABLE ops that produce NaN in the converted model.
    with tempfile.TemporaryDirectory() as tmp:
        generator.export(tmp, format="tf_saved_model", verbose=False)
        return {mode: _configure(tf.lite.TFLiteConverter.from_saved_model(tmp), mode, samples).convert() for mode in modes}


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

`pix2pix-export` (installed with the package) and `python -m pix2pix_tf.export` take the same flags.
Writes EXPORT_DIR/MODEL_NAME/VERSION/ (SavedModel: serving_default, translate_encoded, translate_float),
EXPORT_DIR/MODEL_NAME/generator_{fp32,fp16,int8,int8_full}.tflite and EXPORT_DIR/MODEL_NAME/export_report.json.
"""


def main(argv: list[str] | None = None) -> int:
    """The export command: `pix2pix-export`, `python -m pix2pix_tf.export` or `python export.py`."""
    # export_report builds on this module, so it can only be imported once this one is.
    from .export_report import ExportConfig, run_export
    from .training import setup_logging

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
