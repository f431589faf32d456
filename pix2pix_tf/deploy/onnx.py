"""ONNX: the generator converted by tf2onnx, run on ONNX Runtime (optional extra: pip install 'pix2pix_tf[onnx]')."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ..extras import import_extra

ONNX_FILE = "generator.onnx"
ONNX_OPSET = 17  # the opset the conversion was verified with (tf2onnx 1.17, onnxruntime 1.32)
INPUT_NAME = "images"  # as the SavedModel's translate_float and the .tflite files take them


def require_onnx() -> None:
    """Raises UsageError, naming the install command, unless tf2onnx and onnxruntime can be imported."""
    for name in ("tf2onnx", "onnxruntime"):
        import_extra(name, "--formats onnx")


def convert_onnx(generator: keras.Model, opset: int = ONNX_OPSET) -> bytes:
    """The generator as a serialized ONNX model, taking what `translate_float` and the .tflite files take.

    Input `images`: float32 [N, H, W, C] in [-1, 1] at the model size; output: the raw generator output
    (no pre/post-processing in the graph). Only this float graph converts: the SavedModel's uint8 and encoded-bytes signatures use ops ONNX lacks
    (ScaleAndTranslate for the antialiased resize, DecodeImage, EncodePng).

    Raises:
        UsageError: tf2onnx or onnxruntime is not installed.
    """
    require_onnx()
    tf2onnx = import_extra("tf2onnx", "--formats onnx")
    size, channels = tuple(generator.input_shape[1:3]), generator.input_shape[-1]
    spec = (tf.TensorSpec((None, *size, channels), tf.float32, name=INPUT_NAME),)
    # tf2onnx traces the model's inference call (training=None: moving BatchNorm statistics, no dropout).
    model_proto, _ = tf2onnx.convert.from_keras(generator, input_signature=spec, opset=opset)
    return model_proto.SerializeToString()


class OnnxGenerator:
    """A generator .onnx file on ONNX Runtime as a function: float32 [-1, 1] [N, H, W, C] in, float32 [-1, 1] out."""

    def __init__(self, model_path: str):
        require_onnx()
        onnxruntime = import_extra("onnxruntime", "running a .onnx model")
        self._session = onnxruntime.InferenceSession(model_path, providers=onnxruntime.get_available_providers())
        self._input = self._session.get_inputs()[0]

    @property
    def input_name(self) -> str:
        return self._input.name

    @property
    def input_shape(self) -> tuple:
        """[N, H, W, C] as the file declares it: ints for fixed sides, names (str) or None for free ones."""
        return tuple(self._input.shape)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(int(side) for side in self._input.shape[1:3])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input.name: np.asarray(images, np.float32)})[0]
