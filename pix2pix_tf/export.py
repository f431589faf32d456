"""Deployable forms of a trained generator: a SavedModel in TF Serving's layout and TFLite flatbuffers."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import tempfile
from typing import Callable, Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from . import export_report
from .config import TrainConfig, UsageError, _field
from .data import to_float, to_uint8
from .files import atomic_path, write_json
from .litert import LiteRTGenerator
from .models import build_generator

logger = logging.getLogger("pix2pix_tf")

# Signature names and tensor keys: the contract with every client (TF Serving, predict.py, the demo).
# TF Serving's REST API base64-encodes string outputs whose key ends in "_bytes".
SIGNATURES = ("serving_default", "translate_encoded", "translate_float")
TFLITE_MODES = ("fp32", "fp16", "int8", "int8_full")
FORMATS = ("savedmodel", *TFLITE_MODES)


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What export.py writes and from which model; its flags are generated from these fields."""

    checkpoint_dir: str = _field("outputs/checkpoints", "checkpoints/ of a train.py run (config.json is read from its parent)")
    keras_file: str = _field("", "a .keras generator file instead of --checkpoint-dir (loaded with safe_mode)")
    export_dir: str = _field("exports", "base folder: the SavedModel goes to EXPORT_DIR/MODEL_NAME/VERSION, TFLite next to it")
    model_name: str = _field("pix2pix", "TF Serving model name (folder under --export-dir)")
    version: int = _field(0, "SavedModel version; 0 = one more than the highest existing")
    overwrite: bool = _field(False, "replace an existing version / TFLite files instead of refusing")
    formats: str = _field(",".join(FORMATS), f"comma-separated subset of {','.join(FORMATS)}")
    calibration_dir: str = _field("", "pair images whose input halves calibrate int8_full; default: the run's train/")
    calibration_count: int = _field(100, "calibration images used for int8_full")
    eval_dir: str = _field("", "held-out pair images for the fidelity figures; default: the run's val/")
    eval_count: int = _field(8, "held-out images compared against the Keras generator")
    direction: str = _field("", "which half of a pair is the input; default: the run's --direction (BtoA)", ("", "AtoB", "BtoA"))
    latency_runs: int = _field(20, "timed one-image calls per format for the latency figures")

    def __post_init__(self) -> None:
        unknown = set(self.format_list) - set(FORMATS)
        if unknown or not self.format_list:
            raise UsageError(f"--formats {self.formats!r}: choose from {','.join(FORMATS)}")
        if not is_safe_model_name(self.model_name):
            raise UsageError(f"--model-name {self.model_name!r} must be a plain folder name (letters, digits, _ . -)")
        for name in ("version", "calibration_count", "eval_count", "latency_runs"):
            if getattr(self, name) < (0 if name == "version" else 1):
                raise UsageError(f"--{name.replace('_', '-')} is out of range: {getattr(self, name)}")

    @property
    def format_list(self) -> list[str]:
        return [f.strip() for f in self.formats.split(",") if f.strip()]


def model_size(generator: keras.Model) -> tuple[int, int]:
    """(height, width) the generator was built for."""
    return tuple(int(side) for side in generator.input_shape[1:3])


def preprocess(images: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """uint8 [N, h, w, 3] of any size -> float32 [-1, 1] at the model size (bilinear, antialiased when shrinking)."""
    return tf.image.resize(to_float(images), size, antialias=True)


def postprocess(outputs: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Generator output [-1, 1] -> uint8 at `size` (the caller's original height, width)."""
    return to_uint8(tf.image.resize(outputs, size, antialias=True))


def serving_functions(generator: keras.Model) -> dict[str, tuple[Callable, list[tf.TensorSpec]]]:
    """The three endpoints, name -> (function, input signature); pre/post-processing lives in the graph."""
    size = model_size(generator)

    def translate_images(images):
        outputs = generator(preprocess(images, size), training=False)
        return {"images": postprocess(outputs, tf.shape(images)[1:3])}

    def translate_encoded(image_bytes):
        def decode(data):
            # channels=3: grayscale and RGBA files become RGB; PNG and JPEG both decode here.
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return preprocess(image[tf.newaxis], size)[0], tf.shape(image)[:2]

        inputs, sizes = tf.map_fn(
            decode, image_bytes,
            fn_output_signature=(tf.TensorSpec((*size, 3), tf.float32), tf.TensorSpec((2,), tf.int32)),
        )  # [N, H, W, 3], [N, 2]
        outputs = generator(inputs, training=False)
        encoded = tf.map_fn(
            lambda args: tf.io.encode_png(postprocess(args[0][tf.newaxis], args[1])[0]),
            (outputs, sizes), fn_output_signature=tf.TensorSpec((), tf.string),
        )
        return {"image_bytes": encoded}

    def translate_float(images):
        return {"images": generator(images, training=False)}

    return {
        "serving_default": (translate_images, [tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")]),
        "translate_encoded": (translate_encoded, [tf.TensorSpec((None,), tf.string, name="image_bytes")]),
        "translate_float": (translate_float, [tf.TensorSpec((None, *size, 3), tf.float32, name="images")]),
    }


def write_serving_savedmodel(generator: keras.Model, path: str) -> None:
    """A SavedModel at `path` with the three signatures (Keras' ExportArchive tracks the variables)."""
    archive = keras.export.ExportArchive()
    archive.track(generator)
    for name, (fn, spec) in serving_functions(generator).items():
        archive.add_endpoint(name, fn, input_signature=spec)
    archive.write_out(path, verbose=False)


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
    with open(path) as f:
        return TrainConfig(**json.load(f))


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
        config.image_size, filters=config.generator_filters, depth=config.resolved_generator_depth, norm=config.norm
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


def _default_split_dir(run: TrainConfig | None, checkpoint_dir: str, split: str) -> str:
    """The run's own data split: DATA_DIR/split, or the synthetic set train.py drew into the run folder."""
    if run is None:
        return ""
    if run.dataset == "synthetic":
        return os.path.join(os.path.dirname(os.path.abspath(checkpoint_dir)), "data", "synthetic", split)
    return os.path.join(run.data_dir, split)


def run_export(config: ExportConfig) -> dict:
    """Loads the generator, writes every requested format under `config.export_dir`, measures them.

    Returns:
        The report, also written to EXPORT_DIR/MODEL_NAME/export_report.json.

    Raises:
        UsageError: a missing model / data folder, or outputs that exist without --overwrite.
    """
    generator, run = load_generator(config.checkpoint_dir, config.keras_file)
    size = model_size(generator)
    direction = config.direction or (run.direction if run else "BtoA")
    eval_dir = config.eval_dir or _default_split_dir(run, config.checkpoint_dir, "val")
    if not eval_dir:
        raise UsageError("no held-out images for the fidelity figures: pass --eval-dir (a folder of pair images)")
    inputs = export_report.load_inputs(eval_dir, direction, size, config.eval_count)
    model_dir = os.path.join(config.export_dir, config.model_name)
    formats = config.format_list
    tflite_modes = [mode for mode in TFLITE_MODES if mode in formats]
    paths = {mode: os.path.join(model_dir, tflite_name(mode)) for mode in tflite_modes}
    existing = [path for path in paths.values() if os.path.exists(path)]
    if existing and not config.overwrite:
        raise UsageError(f"{existing[0]} already exists: pass --overwrite to replace it")
    calibration = None
    if "int8_full" in tflite_modes:
        calibration_dir = config.calibration_dir or _default_split_dir(run, config.checkpoint_dir, "train")
        if not calibration_dir:
            raise UsageError("int8_full needs calibration images: pass --calibration-dir (a folder of pair images)")
        calibration = export_report.load_inputs(calibration_dir, direction, size, config.calibration_count)
    runners = {}
    if "savedmodel" in formats:
        path = export_saved_model(generator, config.export_dir, config.model_name, config.version or None, config.overwrite)
        logger.info("SavedModel written to %s", path)
        translate = tf.saved_model.load(path).signatures["translate_float"]
        runners["savedmodel"] = (path, lambda x: translate(images=tf.constant(x))["images"].numpy())
    for mode, flatbuffer in convert_tflite_modes(generator, tflite_modes, calibration).items():
        path = paths[mode]
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(flatbuffer)
        logger.info("TFLite %s written to %s (%d bytes)", mode, path, len(flatbuffer))
        runners[f"tflite_{mode}"] = (path, LiteRTGenerator(path))
    report = {
        "model": {"image_size": list(size), "source": config.keras_file or tf.train.latest_checkpoint(config.checkpoint_dir)},
        "eval": {"dir": eval_dir, "images": len(inputs), "calibration_images": 0 if calibration is None else len(calibration)},
        "formats": export_report.measure(runners, generator, inputs, config.latency_runs),
        "environment": export_report.environment(),
    }
    write_json(os.path.join(model_dir, "export_report.json"), report)
    return report
