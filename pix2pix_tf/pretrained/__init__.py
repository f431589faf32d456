"""Models shipped inside the package: fp16 weights, each beside a manifest that says how it was made.

    pix2pix_tf/pretrained/cityscapes-generator.npz    the weights, float16, one array per Keras variable path
    pix2pix_tf/pretrained/cityscapes-generator.json   the manifest: SHA-256 of the .npz, the network's config,
                                                      the commands, commit, machine and judge scores behind it
    pix2pix_tf/pretrained/cityscapes-examples/        a few val label maps (the generator's inputs) to try it on

`--pretrained cityscapes` in predict, export, evaluate, demo and site loads the generator by name
(`load_generator`), and `--fcn-score pretrained:cityscapes` the judge (evaluate/segmenter.load_segmenter);
a manifest's path works wherever its name does. Every load checks the file's SHA-256 against the manifest
first. `python -m pix2pix_tf.ship` (apps/ship.py) is the only writer of these files.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UsageError
from ..files import sha256

if TYPE_CHECKING:  # keras loads TensorFlow: the tools' --help and flag errors stay quick without it
    import keras

PRETRAINED_DIR = os.path.dirname(os.path.abspath(__file__))
PREFIX = "pretrained:"  # a shipped model where a path is expected: --fcn-score pretrained:NAME, pix2pix-site --model
FP16_MAX = float(np.finfo(np.float16).max)


def manifest_path(name: str, kind: str) -> str:
    """The manifest of a shipped model by name (`cityscapes`), or the path given when it is a .json file."""
    if name.endswith(".json"):
        return os.path.abspath(os.path.expanduser(name))
    return os.path.join(PRETRAINED_DIR, f"{name}-{kind}.json")


def available(kind: str) -> list[str]:
    """Names of the shipped models of a kind."""
    suffix = f"-{kind}.json"
    return sorted(f[: -len(suffix)] for f in os.listdir(PRETRAINED_DIR) if f.endswith(suffix))


def example_files(name: str) -> list[str]:
    """The label maps shipped beside generator `name` (`NAME-examples/*.png`), sorted; [] when it has none."""
    folder = manifest_path(name, "generator")[: -len("-generator.json")] + "-examples"
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".png"))


def example_inputs(name: str, size: tuple[int, int], count: int) -> np.ndarray:
    """The first `count` shipped examples as generator inputs: float32 [N, H, W, 3] in [-1, 1] at `size`.

    Raises:
        UsageError: the model ships no examples.
    """
    import tensorflow as tf

    files = example_files(name)[:count]
    if not files:
        raise UsageError(f"the pretrained generator {name!r} ships no example inputs: pass a folder of pair images")
    images = [tf.image.resize(tf.io.decode_png(tf.io.read_file(f), channels=3), size) for f in files]
    return (tf.stack(images) / 127.5 - 1.0).numpy()


def read_manifest(name: str, kind: str) -> tuple[dict[str, Any], str]:
    """(manifest, path of its weights file), the weights checked against the manifest's SHA-256.

    Raises:
        UsageError: no such model, an unreadable manifest, a missing weights file, or one whose hash differs.
    """
    path = manifest_path(name, kind)
    if not os.path.isfile(path):
        shipped = ", ".join(available(kind)) or "none"
        raise UsageError(f"no pretrained {kind} {name!r} (shipped: {shipped}): pass one of those names or a manifest .json")
    try:
        with open(path) as f:
            manifest = json.load(f)
        weights = os.path.join(os.path.dirname(path), manifest["file"])
        expected = manifest["sha256"]
    except (ValueError, KeyError, TypeError) as err:
        raise UsageError(f"{path} is not a pretrained-model manifest ({err!r})") from err
    if not os.path.isfile(weights):
        raise UsageError(f"{weights} is missing (named by {path}): restore it with `git checkout -- {weights}` "
                         "or reinstall pix2pix_tf")
    actual = sha256(weights)
    if actual != expected:
        raise UsageError(f"{weights} has SHA-256 {actual[:12]}…, its manifest says {expected[:12]}…: the file was "
                         f"altered or cut short; restore it with `git checkout -- {weights}` or reinstall pix2pix_tf")
    return manifest, weights


def save_weights_fp16(model: keras.Model, path: str) -> None:
    """Writes every variable of `model` as float16 into an .npz keyed by the variable's path.

    Keras writes weights in the variables' own dtype (float32 here), and there is no option to store them
    narrower: this halves the shipped file. Values past float16's range would become inf, so they refuse.
    """
    # np.savez stamps each member with the current time, so the same weights would hash differently on every
    # write: members are written here with a fixed timestamp, and the ship command reproduces the manifest's SHA-256.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, value in fp16_arrays(model).items():
            member = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(member, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, value, allow_pickle=False)


def fp16_arrays(model: keras.Model) -> dict[str, np.ndarray]:
    """{variable path: its value as float16} for every variable of `model`, in `model.weights` order.

    Raises:
        ValueError: a value is beyond float16's range (it would become inf).
    """
    arrays = {}
    for variable in model.weights:
        value = np.asarray(variable.numpy(), np.float32)
        if np.abs(value).max(initial=0.0) > FP16_MAX:
            raise ValueError(f"{variable.path} holds values beyond float16's range ({FP16_MAX:g})")
        arrays[variable.path] = value.astype(np.float16)
    return arrays


def holds_weights_fp16(path: str, model: keras.Model) -> bool:
    """Whether `path` already stores exactly `model`'s fp16 weights (re-shipping them then keeps the file)."""
    if not os.path.isfile(path):
        return False
    expected = fp16_arrays(model)
    try:
        with np.load(path) as stored:
            return set(stored.files) == set(expected) and all(np.array_equal(stored[k], v) for k, v in expected.items())
    except (OSError, ValueError, zipfile.BadZipFile):
        return False


def load_weights_fp16(model: keras.Model, path: str) -> None:
    """Assigns the arrays of `save_weights_fp16`'s file to `model`'s variables, widened to their dtype.

    Raises:
        UsageError: the file's variables or shapes are not the model's.
    """
    with np.load(path) as arrays:
        names = {variable.path for variable in model.weights}
        if set(arrays.files) != names:
            odd = sorted(set(arrays.files) ^ names)[:3]
            raise UsageError(f"{path} does not hold this network's variables (differing: {odd})")
        for variable in model.weights:
            value = arrays[variable.path]
            if tuple(value.shape) != tuple(variable.shape):
                raise UsageError(f"{path}: {variable.path} has shape {value.shape}, the network's is {tuple(variable.shape)}")
            variable.assign(value.astype(variable.dtype))


def load_generator(name: str, precision: str | Callable[[str], str] = "fp32"):
    """The shipped generator `name` as a `run.Restored` (its config is the training run's; no run folder).

    Args:
        name: a shipped name (`cityscapes`) or the path of a generator manifest .json.
        precision: the dtype policy to build G under ("fp32", "bf16", "fp16"; the weights are float32 either way),
            or a function of the training run's --precision that returns one (precision.resolve_precision).

    Raises:
        UsageError: see `read_manifest`.
    """
    from ..config import TrainConfig
    from ..core.networks import build_generator
    from ..precision import dtype_policy
    from ..run import Restored

    manifest, weights = read_manifest(name, "generator")
    config = TrainConfig(**manifest["config"])
    with dtype_policy(precision(config.precision) if callable(precision) else precision):
        generator = build_generator(
            config.image_size, config.resolved_input_channels, config.resolved_output_channels,
            filters=config.generator_filters, depth=config.resolved_generator_depth, norm=config.norm,
        )  # fmt: skip
    load_weights_fp16(generator, weights)
    return Restored(generator, config, "", weights, int(manifest.get("epoch", 0)), manifest["name"])


def load_any(pretrained: str = "", checkpoint_dir: str = "", keras_file: str = "",
             precision: str | Callable[[str], str] = "fp32"):
    """The generator a tool was pointed at, as a `run.Restored`: the shipped one named `pretrained`, else a
    .keras file, else a train.py run's checkpoint (a .keras file loads as saved, whatever `precision`).

    One choice for predict, export and evaluate, whose --pretrained / --keras-file / --checkpoint-dir flags name it.
    """
    from ..run import load_generator as load_keras_file, restore_generator

    if pretrained:
        return load_generator(pretrained, precision)
    if keras_file:
        return load_keras_file(checkpoint_dir, keras_file)
    return restore_generator(checkpoint_dir, precision)
