"""Runs an exported generator .tflite on LiteRT (ai-edge-litert), the maintained standalone runtime."""

from __future__ import annotations

import numpy as np

from ..extras import import_extra


class LiteRTGenerator:
    """A .tflite generator as a function: float32 [-1, 1] [N, H, W, 3] in, float32 [-1, 1] out.

    Quantized (int8 I/O) models are quantized / dequantized here with the tensors' own scale and
    zero point, so every variant is called and compared the same way.

    Raises:
        UsageError: ai-edge-litert (the `litert` extra) is not installed.
    """

    def __init__(self, model_path: str = "", model_content: bytes | None = None, num_threads: int | None = None):
        interpreter = import_extra("ai_edge_litert.interpreter", "running a .tflite model").Interpreter
        self._interpreter = interpreter(model_path=model_path or None, model_content=model_content, num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(int(side) for side in self._input["shape"][1:3])

    @property
    def channels(self) -> tuple[int, int]:
        """(input, output) channels: (3, 3) for RGB -> RGB, (1, 2) for a colorizer (L -> ab)."""
        return int(self._input["shape"][-1]), int(self._output["shape"][-1])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Translates a batch one image at a time (the converted graph has batch size 1)."""
        return np.concatenate([self._run_one(image[np.newaxis]) for image in np.asarray(images, np.float32)])

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        expected = tuple(self._input["shape"][1:])
        if image.shape[1:] != expected:
            raise ValueError(f"the .tflite model takes [1, {expected}] inputs, got {image.shape}: resize first")
        self._interpreter.set_tensor(self._input["index"], _quantize(image, self._input))
        self._interpreter.invoke()
        return _dequantize(self._interpreter.get_tensor(self._output["index"]), self._output)


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return x
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return y
    scale, zero_point = detail["quantization"]
    return (y.astype(np.float32) - zero_point) * scale
