"""Optional dependencies (pyproject extras): imported when first needed, and named with their extra when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import UsageError

# top-level module -> (the PyPI package that provides it, the pix2pix_tf extra that installs it)
EXTRAS = {
    "ai_edge_litert": ("ai-edge-litert", "litert"),
    "tensorflow_serving": ("tensorflow-serving-api", "serving"),
    "tf2onnx": ("tf2onnx", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
}


def import_extra(module: str, purpose: str, instead: str = "") -> ModuleType:
    """`importlib.import_module(module)`, or a one-line error naming the extra that installs it.

    Args:
        module: a module of one of the `EXTRAS` packages, e.g. "ai_edge_litert.interpreter".
        purpose: what needs it, to start the message ("running a .tflite model").
        instead: a way to do without it, added to the message ("pass --formats savedmodel").

    Raises:
        UsageError: the package is not installed.
    """
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if not (err.name or "").startswith(top):
            raise  # the package is there but one of ITS dependencies is missing: not what the message would say
        package, extra = EXTRAS[top]
        alternative = f", or {instead}" if instead else ""
        raise UsageError(
            f'{purpose} needs {package}, which is not installed: pip install "pix2pix_tf[{extra}]"{alternative}'
        ) from None
