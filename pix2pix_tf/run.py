"""A run directory, the one place that knows its layout: train.py writes it, every other tool reads it back.

    OUTPUT_DIR/config.json    the run's TrainConfig
    OUTPUT_DIR/history.json   one row of metrics per epoch
    OUTPUT_DIR/checkpoints/   tf.train.Checkpoint files (train/checkpointing.py says what they hold)

Every tool takes the run's output folder or its checkpoints/ alike (`find_run_dir`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from collections.abc import Callable

import keras
import tensorflow as tf

from .config import TrainConfig
from .core.networks import build_generator
from .errors import UsageError
from .files import write_json
from .precision import dtype_policy

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
CHECKPOINTS_DIR = "checkpoints"
# What a run leaves in OUTPUT_DIR (report/ is evaluate.py's default); --restart moves these aside, deleting nothing.
RUN_OUTPUTS = (CHECKPOINTS_DIR, HISTORY_FILE, "plots", "samples", "tensorboard", "report", CONFIG_FILE)


def is_checkpoint_prefix(path: str) -> bool:
    """True for one checkpoint of a run, named by its prefix (`RUN/checkpoints/ckpt-925`)."""
    return os.path.isfile(path + ".index")


def find_run_dir(path: str) -> str:
    """The run's output folder, given that folder, its checkpoints/ or one checkpoint in it (`.../ckpt-925`)."""
    path = os.path.normpath(path)
    if is_checkpoint_prefix(path):
        path = os.path.dirname(path)
    return os.path.dirname(path) if os.path.basename(path) == CHECKPOINTS_DIR else path


def read_run_config(path: str) -> TrainConfig:
    """The TrainConfig of a run from its config.json, with its paths expanded as if just given.

    Keys this version does not know (a newer run's) are left out rather than failing; a config.json
    written before paths were stored expanded (`"data_root": "~/.keras/datasets"`) reads the same as
    a new one.

    Raises:
        UsageError: the file is not a JSON object, or a value in it has a wrong type (null, a quoted
            number: TrainConfig's checks then fail with a TypeError) or is no longer valid.
    """
    try:
        with open(path) as f:
            saved = json.load(f)
        if not isinstance(saved, dict):
            raise ValueError(f"a JSON {type(saved).__name__}, not an object")
        known = {field.name for field in dataclasses.fields(TrainConfig)}
        return TrainConfig(**{key: value for key, value in saved.items() if key in known})
    except (ValueError, TypeError) as err:  # UsageError and json.JSONDecodeError are ValueErrors
        raise UsageError(f"{path} is not a readable run config ({err})") from err


def write_run_config(run_dir: str, config: TrainConfig) -> None:
    """OUTPUT_DIR/config.json: every field of the config, as `read_run_config` reads it back."""
    write_json(os.path.join(run_dir, CONFIG_FILE), config.to_dict())


def read_history(path: str, completed_epochs: int) -> list[dict]:
    """history.json rows up to the restored epoch (rows past it belong to an epoch that was not checkpointed)."""
    if completed_epochs == 0 or not os.path.exists(path):
        return []
    with open(path) as f:
        return [row for row in json.load(f) if row["epoch"] <= completed_epochs]


def wall_seconds(run_dir: str) -> float | None:
    """A finished run's wall time, read from its log file: the last "done: ... outputs in RUN" line, less the
    "pix2pix_tf: N train / M val pairs" line before it (None when the log is gone or the run did not finish)."""
    with open(os.path.join(run_dir, "config.json")) as f:
        log_file = json.load(f).get("log_file", "")
    if not os.path.isfile(log_file):
        return None
    with open(log_file) as f:
        lines = f.read().splitlines()
    done = [i for i, line in enumerate(lines) if "INFO done:" in line and line.rstrip().endswith(run_dir)]
    if not done:
        return None
    begin = [i for i in range(done[-1]) if "train /" in lines[i] and "pairs from" in lines[i]]
    stamp = lambda line: datetime.datetime.fromisoformat(line[:19])  # noqa: E731
    return (stamp(lines[done[-1]]) - stamp(lines[begin[-1]])).total_seconds() if begin else None


@dataclasses.dataclass
class Restored:
    """A generator read back from a run (or a .keras file), with what is needed to feed and describe it."""

    generator: keras.Model
    config: TrainConfig | None  # the run's config.json; None for a .keras file
    run_dir: str  # "" for a .keras file
    checkpoint: str  # the checkpoint (or .keras file) the weights came from
    epoch: int  # completed epochs at that checkpoint; 0 for a .keras file
    pretrained: str = ""  # the shipped model's name (pix2pix_tf.pretrained), else ""


def kept_checkpoints(checkpoints_dir: str) -> list[str]:
    """The checkpoint prefixes kept in a run's checkpoints/, oldest first (none when it has no `checkpoint` file)."""
    state = tf.train.get_checkpoint_state(checkpoints_dir)
    return list(state.all_model_checkpoint_paths) if state else []


def restore_generator(path: str, precision: str | Callable[[str], str] = "fp32") -> Restored:
    """The generator alone, rebuilt from a run's config.json with the latest checkpoint's weights (or a named one).

    Only G is built and read; the discriminator and the optimizer slots stay in the file.

    Args:
        path: a train.py --output-dir, or its checkpoints/ (the latest checkpoint), or one checkpoint there
            by its prefix, `RUN/checkpoints/ckpt-925` (an earlier epoch kept by --keep-checkpoints).
        precision: "fp32", "bf16" or "fp16": the dtype policy to build G under (the weights are float32 either
            way); or a function of the run's --precision that returns one (precision.resolve_precision).

    Raises:
        UsageError: no config.json or checkpoint there, or the checkpoint does not fit the config.
    """
    path = os.path.normpath(path)
    named = is_checkpoint_prefix(path)
    parent = os.path.dirname(path)
    if os.path.basename(parent) == CHECKPOINTS_DIR and not named and not os.path.isdir(path):
        kept = ", ".join(os.path.basename(p) for p in kept_checkpoints(parent)) or "none"
        raise UsageError(f"{path} is not a checkpoint (kept in {parent}: {kept}); train.py --keep-checkpoints N keeps more")
    run_dir = find_run_dir(path)
    config_path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise UsageError(f"{config_path} not found: --checkpoint-dir must be a train.py --output-dir "
                         "(it holds config.json and checkpoints/) or its checkpoints/")
    config = read_run_config(config_path)
    checkpoints = os.path.join(run_dir, CHECKPOINTS_DIR)
    latest = path if named else tf.train.latest_checkpoint(checkpoints)
    if latest is None:
        raise UsageError(f"no checkpoint in {checkpoints}: train first (train.py --output-dir {run_dir})")
    with dtype_policy(precision(config.precision) if callable(precision) else precision):
        generator = build_generator(
            config.image_size, config.resolved_input_channels, config.resolved_output_channels,
            filters=config.generator_filters, depth=config.resolved_generator_depth, norm=config.norm,
        )  # fmt: skip
    epoch = tf.Variable(0, dtype=tf.int64, name="epoch")
    try:
        tf.train.Checkpoint(generator=generator, epoch=epoch).restore(latest).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError) as err:
        raise UsageError(f"{latest} does not match the generator of {config_path}: {str(err).splitlines()[0]}") from err
    return Restored(generator, config, run_dir, latest, int(epoch.numpy()))


def load_generator(checkpoint_dir: str = "", keras_file: str = "") -> Restored:
    """`restore_generator(checkpoint_dir)`, or the generator of a `.keras` file when one is given.

    Raises:
        UsageError: no such file, or what `restore_generator` raises.
    """
    if not keras_file:
        return restore_generator(checkpoint_dir)
    if not os.path.isfile(keras_file):
        raise UsageError(f"{keras_file} does not exist: --keras-file must be a .keras model file")
    # safe_mode refuses lambda layers and other deserialized code.
    return Restored(keras.saving.load_model(keras_file, compile=False, safe_mode=True), None, "", keras_file, 0)
