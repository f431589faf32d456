"""The SavedModel: the generator with its serving signatures, in TF Serving's numbered-version layout."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable

import keras
import tensorflow as tf

from ..errors import UsageError
from ..files import write_json
from ..inference import MAX_PIXELS, RESIZE_MODES, inference_generator, model_size, size_multiple
from ..tasks import task_for_channels

# Signature names and tensor keys: the contract with every client (TF Serving, predict.py, the demo).
# TF Serving's REST API base64-encodes string outputs whose key ends in "_bytes".
SIGNATURES = ("serving_default", "translate_encoded", "translate_float")
METADATA_FILE = os.path.join("assets.extra", "pix2pix.json")  # the modes an export's signatures were written with


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
        max_pixels: the cap on an image's pixel count (own size: padded to 2^depth), in both modes; a larger image
            is an error before anything is allocated for it (an encoded one: from its header, before decoding).
        seed: seeds the paper mode's dropout masks (inference.inference_generator).
    """
    if resize_mode not in RESIZE_MODES:
        raise UsageError(f"--resize-mode {resize_mode!r}: choose one of {', '.join(RESIZE_MODES)}")
    # The task builds the endpoints; its channels say which (a colorizer takes gray or RGB, returns the colorized RGB).
    task = task_for_channels(generator.input_shape[-1], generator.output_shape[-1])
    net = inference_generator(generator, test_mode, seed=seed)  # any size, shares the generator's weights
    return task.serving_functions(net, model_size(generator), resize_mode, max_pixels)


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
        "max_pixels": max_pixels,  # exports written before squash had a cap hold None there
        "image_size": list(model_size(generator)),
        "size_multiple": size_multiple(generator),
        "channels": [int(generator.input_shape[-1]), int(generator.output_shape[-1])],
    }


def read_metadata(saved_model_dir: str, test_mode: str = "", resize_mode: str = "", instead: str = "") -> dict:
    """The modes an export was written with; exports older than the modes were eval + squash.

    Args:
        test_mode, resize_mode: what the caller asks for ("" = whatever the export does).
        instead: another way out, added to the error ("or use --backend checkpoint").

    Raises:
        UsageError: a mode asked for differs from the export's (the signatures fixed it): the message names the re-export.
    """
    path = os.path.join(saved_model_dir, METADATA_FILE)
    metadata = {"test_mode": "eval", "resize_mode": "squash"}
    if os.path.isfile(path):
        with open(path) as f:
            metadata = json.load(f)
    for name, wanted in (("test_mode", test_mode), ("resize_mode", resize_mode)):
        flag = "--" + name.replace("_", "-")
        if wanted and wanted != metadata[name]:
            raise UsageError(
                f"{saved_model_dir} was exported with {flag} {metadata[name]}, not {wanted}: re-export it with "
                f"python export.py {flag} {wanted} (another --model-name keeps both){instead}"
            )
    return metadata


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
