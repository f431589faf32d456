"""TFLite: the generator converted at its training size, fp32 / fp16 / int8 / int8_full (runs on LiteRT: deploy/litert.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from ..inference import inference_generator

TFLITE_MODES = ("fp32", "fp16", "int8", "int8_full")


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


def tflite_name(mode: str) -> str:
    return f"generator_{mode}.tflite"
