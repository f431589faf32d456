"""The FCN-score's segmenter: a U-Net trained by fit() to map Cityscapes photos to the 19 class ids.

    python -m pix2pix_tf.segmenter train --data-dir ../shared/datasets/cityscapes --image-size 256 --epochs 20
    python -m pix2pix_tf.segmenter train --data-dir DIR --image-size 64 --epochs 3 --output-dir outputs/segmenter64

The pix2pix paper scores generated street scenes with an FCN trained on real photos (its "FCN-score"):
the better the photos, the closer the segmenter's accuracy gets to its accuracy on real photos.
`evaluate.py --fcn-score OUTPUT_DIR` applies the segmenter saved here. Re-running the same command
resumes an interrupted run (keras BackupAndRestore); raising --epochs continues a finished one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from ..config import (
    add_config_flags, auto_generator_depth, config_from_args, expand_path_fields, option, parse_image_size,
)  # fmt: skip
from ..core import networks
from ..core.networks import build_generator
from ..data.pairs import AUTOTUNE, list_images, load_pair, to_float
from ..data.palette import CLASS_NAMES, IGNORE, NUM_CLASSES, colours_to_ids
from ..errors import UsageError
from ..files import write_json
from ..logs import setup_logging
from ..precision import dtype_policy, gpu_compute_capability, resolve_precision, weight_gradients_by_taps
from ..pretrained import PREFIX, load_weights_fp16, read_manifest
from ..run import read_history
from .metrics import confusion_matrix, segmentation_scores

logger = logging.getLogger("pix2pix_tf")
MODEL_FILE = "segmenter.keras"


@dataclasses.dataclass(frozen=True)
class SegmenterConfig:
    """A segmenter training run; `python -m pix2pix_tf.segmenter train`'s flags come from these fields."""

    data_dir: str = option("", "pix2pix-layout folder of photo | colour-label pairs (train/, val/), e.g. Cityscapes", path="home")
    direction: str = option("AtoB", "which half is the photo: AtoB = the LEFT half (Cityscapes), BtoA = the RIGHT", ("AtoB", "BtoA"))
    image_size: tuple[int, int] = option((256, 256), "segmenter input size: one int or HEIGHTxWIDTH (photos are resized to it)")
    filters: int = option(32, "width of the U-Net's first conv")
    depth: int = option(0, "U-Net stride-2 downsamples; 0 = auto (8 at 256 px, 7 at 128, ...)")
    epochs: int = option(20, "epochs to train (a resumed run trains up to this total)")
    batch_size: int = option(8, "photos per step")
    steps_per_epoch: int = option(0, "cap on train steps per epoch; 0 = one pass over the train split")
    val_steps: int = option(0, "cap on validation batches per epoch; 0 = the whole val split")
    lr: float = option(1e-3, "Adam learning rate")
    precision: str = option("auto", "compute precision: auto = bf16 on CPUs with AVX512-BF16/AMX and Ampere+ GPUs, fp16 on older tensor-core GPUs, else fp32 (weights stay float32)", ("auto", "fp32", "bf16", "fp16"))
    output_dir: str = option("outputs/segmenter", f"where {MODEL_FILE}, config.json, history.json and scores.json go", path="home")
    seed: int = option(42, "seed for weights, shuffling and flips")

    def __post_init__(self) -> None:
        expand_path_fields(self)
        object.__setattr__(self, "image_size", parse_image_size(self.image_size))
        if not self.data_dir:
            raise UsageError("no data: pass --data-dir DIR (a folder with train/ and val/ photo | label pairs)")
        for name in ("filters", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if min(self.steps_per_epoch, self.val_steps, self.depth) < 0 or self.lr <= 0:
            raise UsageError("need --steps-per-epoch, --val-steps, --depth >= 0 and --lr > 0")
        depth = self.resolved_depth
        if self.image_size[0] % 2**depth or self.image_size[1] % 2**depth:
            raise UsageError(f"--image-size {self.image_size[0]}x{self.image_size[1]} is not a multiple of 2^{depth}: "
                             f"use a multiple of {2**depth}, or a smaller --depth")

    @property
    def resolved_depth(self) -> int:
        return self.depth or auto_generator_depth(self.image_size)


def build_segmenter(image_size: tuple[int, int], filters: int = 32, depth: int = 8) -> keras.Model:
    """The paper's U-Net with NUM_CLASSES outputs and no tanh: per-pixel class logits [N, H, W, 19]."""
    unet = build_generator(image_size, output_channels=NUM_CLASSES, filters=filters, depth=depth)
    # The U-Net's last transposed conv gives the logits; its tanh (for images) is left out.
    return keras.Model(unet.input, unet.get_layer("output_deconv").output, name="segmenter")


def label_ids(label_image: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """Colour label image -> int32 class ids at `image_size`, resized by nearest neighbour (no blended colours)."""
    return colours_to_ids(tf.image.resize(label_image, image_size, method="nearest"))


def _load_example(path: tf.Tensor, direction: str, image_size: tuple[int, int]):
    photo, label = load_pair(path, direction)
    return tf.image.resize(to_float(photo), image_size), label_ids(label, image_size)


def _flip(photo: tf.Tensor, ids: tf.Tensor, seed: tf.Tensor):
    """One mirror draw for the photo and its ids, stacked so they cannot disagree."""
    stacked = tf.concat([photo, tf.cast(ids[..., None], tf.float32)], axis=-1)  # [H, W, 4]
    stacked = tf.image.stateless_random_flip_left_right(stacked, seed=seed)
    return stacked[..., :3], tf.cast(stacked[..., 3], tf.int32)


def make_dataset(files: list[str], config: SegmenterConfig, training: bool) -> tf.data.Dataset:
    """(photo in [-1, 1], class ids) batches: shuffled, mirrored and endless for training; in order otherwise."""
    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=config.seed, reshuffle_each_iteration=True).repeat()
    ds = ds.map(lambda path: _load_example(path, config.direction, config.image_size), num_parallel_calls=AUTOTUNE)
    if training:
        seeds = tf.data.Dataset.random(seed=config.seed).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(lambda example, seed: _flip(*example, seed), num_parallel_calls=AUTOTUNE)
    return ds.batch(config.batch_size, drop_remainder=training).prefetch(AUTOTUNE)


@dataclasses.dataclass(frozen=True)
class Segmenter:
    """A photo -> class-logits model: the project's own `.keras` segmenter or a SavedModel judge.

    `size` is the (height, width) it reads; photos of another size are resized to it (bilinear).
    """

    logits: Callable[[tf.Tensor], tf.Tensor]  # float [N, h, w, 3] in [-1, 1] -> [N, h, w, NUM_CLASSES]
    size: tuple[int, int]
    source: str

    @classmethod
    def from_keras(cls, model: keras.Model, source: str = "") -> "Segmenter":
        return cls(lambda photos: model(photos, training=False), tuple(model.input_shape[1:3]), source or model.name)


def predict_ids(segmenter: Segmenter, photos: tf.Tensor) -> tf.Tensor:
    """Class ids [N, h, w] of photos in [-1, 1], resized to the segmenter's input size first."""
    if tuple(photos.shape[1:3]) != segmenter.size:
        photos = tf.image.resize(photos, segmenter.size)
    return tf.argmax(segmenter.logits(tf.cast(photos, tf.float32)), axis=-1, output_type=tf.int32)


def score(segmenter: Segmenter, dataset: tf.data.Dataset) -> dict[str, float]:
    """FCN-score numbers (pixel_acc, class_acc, class_iou) of the segmenter on (photo, ids) batches."""
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for photos, ids in dataset:
        confusion += confusion_matrix(ids, predict_ids(segmenter, photos), NUM_CLASSES).numpy()
    return segmentation_scores(confusion)


def load_segmenter(path: str) -> Segmenter:
    """A segmenter folder saved by `train` (or its .keras file), a SavedModel judge, or `pretrained:NAME`.

    A SavedModel judge (such as the frozen Cityscapes FCN judge) must have a `serving_default`
    signature taking one float32 [N, H, W, 3] photo tensor in [-1, 1] and returning [N, H, W, 19]
    class logits (the output named `logits`, or its only output).

    Raises:
        UsageError: nothing loadable there, or a SavedModel whose signature does not fit.
    """
    if path.startswith(PREFIX):
        return _load_pretrained_judge(path[len(PREFIX) :])
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return _load_saved_model_judge(path)
    model_path = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
    if not os.path.isfile(model_path):
        raise UsageError(f"no segmenter at {path}: pass a SavedModel judge folder, or train one with `python -m "
                         f"pix2pix_tf.segmenter train --data-dir DIR --output-dir {path}` and pass that folder")
    return Segmenter.from_keras(keras.models.load_model(model_path, compile=False, safe_mode=True), model_path)


def _load_pretrained_judge(name: str) -> Segmenter:
    """The judge shipped as `name` (or a judge manifest's path), its weights' hash checked first."""
    manifest, weights = read_manifest(name, "judge")
    network = manifest["config"]  # the segmenter run's config.json
    size = parse_image_size(network["image_size"])
    model = build_segmenter(size, network["filters"], network["depth"] or auto_generator_depth(size))
    load_weights_fp16(model, weights)
    return Segmenter.from_keras(model, PREFIX + name)


def _load_saved_model_judge(path: str) -> Segmenter:
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures.get("serving_default")
    inputs = signature.structured_input_signature[1] if signature is not None else {}
    outputs = signature.structured_outputs if signature is not None else {}
    spec = next(iter(inputs.values()), None)
    output_key = "logits" if "logits" in outputs else next(iter(outputs), None)
    fits = (
        len(inputs) == 1 and spec.dtype == tf.float32 and spec.shape.rank == 4 and spec.shape[-1] == 3
        and None not in spec.shape[1:3] and output_key is not None and outputs[output_key].shape[-1] == NUM_CLASSES
    )  # fmt: skip
    if not fits:
        raise UsageError(f"{path} is a SavedModel but not a segmenter judge: its serving_default must take one float32 "
                         f"[N, H, W, 3] photo tensor in [-1, 1] and return [N, H, W, {NUM_CLASSES}] logits")
    input_key = next(iter(inputs))

    def logits(photos: tf.Tensor) -> tf.Tensor:
        return signature(**{input_key: photos})[output_key]

    # `loaded` owns the variables the signature reads: keep it alive with the closure.
    logits.saved_model = loaded
    return Segmenter(logits, tuple(spec.shape[1:3]), path)


def _check_same_network(config: SegmenterConfig, model_path: str) -> None:
    """A run that continues a saved segmenter must describe the same network and data layout."""
    config_path = os.path.join(config.output_dir, "config.json")
    if not (os.path.isfile(model_path) and os.path.isfile(config_path)):
        return
    with open(config_path) as f:
        saved = json.load(f)
    for name in ("image_size", "filters", "depth", "direction"):
        value = getattr(config, name)
        if saved.get(name) != (list(value) if isinstance(value, tuple) else value):
            raise UsageError(f"{config.output_dir} holds a segmenter trained with --{name.replace('_', '-')} "
                             f"{saved.get(name)}; pass the same value to continue it, or another --output-dir")


def train(config: SegmenterConfig) -> dict[str, float]:
    """Trains the segmenter on `train/` photos, saves it, and scores it on the real `val/` photos.

    Returns:
        The val FCN-score numbers on real photos (also written to OUTPUT_DIR/scores.json).
    """
    setup_logging("")
    start = time.monotonic()
    train_files, val_files = list_images(config.data_dir, "train"), list_images(config.data_dir, "val")
    logger.info("segmenter: %d train / %d val pairs from %s, at %dx%d", len(train_files), len(val_files),
                config.data_dir, *config.image_size)
    keras.utils.set_random_seed(config.seed)
    model_path, history_path = os.path.join(config.output_dir, MODEL_FILE), os.path.join(config.output_dir, "history.json")
    _check_same_network(config, model_path)
    os.makedirs(config.output_dir, exist_ok=True)
    write_json(os.path.join(config.output_dir, "config.json"), dataclasses.asdict(config))
    done = read_history(history_path, config.epochs)
    if os.path.isfile(model_path) and done:
        # A finished run asked for more epochs: go on from the saved model (the .keras file keeps the optimizer).
        model, initial_epoch = keras.models.load_model(model_path, safe_mode=True), done[-1]["epoch"]
        logger.info("continuing %s from epoch %d", model_path, initial_epoch)
    else:
        capability = gpu_compute_capability()
        precision = resolve_precision(config.precision, capability)
        taps = weight_gradients_by_taps(precision, capability)
        with dtype_policy(precision), networks.kernel_weight_gradients(not taps):
            model, initial_epoch = build_segmenter(config.image_size, config.filters, config.resolved_depth), 0
        logger.info("segmenter: %s compute, %d parameters", precision, model.count_params())
        model.compile(
            optimizer=keras.optimizers.Adam(config.lr),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE),
            metrics=[keras.metrics.MeanIoU(NUM_CLASSES, name="iou", ignore_class=IGNORE, sparse_y_pred=False)],
        )
    steps = max(1, len(train_files) // config.batch_size)
    history = model.fit(
        make_dataset(train_files, config, training=True),
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=min(steps, config.steps_per_epoch) if config.steps_per_epoch else steps,
        validation_data=make_dataset(val_files, config, training=False),
        validation_steps=config.val_steps or None,
        callbacks=[keras.callbacks.BackupAndRestore(os.path.join(config.output_dir, "backup"))],
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=1,
    )
    model.save(model_path)
    # A resumed or continued fit() reports only its own epochs: keep the earlier rows.
    rows = read_history(history_path, history.epoch[0] if history.epoch else config.epochs)
    rows += [{"epoch": e + 1, **{k: float(v[i]) for k, v in history.history.items()}} for i, e in enumerate(history.epoch)]
    write_json(history_path, rows)
    scores = score(Segmenter.from_keras(model, model_path), make_dataset(val_files, config, training=False))
    # wall_seconds: this call's, from data listing to the val score (a resumed run's counts its last part only).
    write_json(os.path.join(config.output_dir, "scores.json"), {"split": "val", "real_photos": scores, "classes": CLASS_NAMES,
                                                                 "wall_seconds": round(time.monotonic() - start, 1)})
    logger.info("segmenter on real val photos: %s; saved to %s", scores, config.output_dir)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pix2pix_tf.segmenter", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser("train", help="train a segmenter on real photos")
    add_config_flags(train_parser, SegmenterConfig)
    args = parser.parse_args(argv)
    try:
        train(config_from_args(args, SegmenterConfig))
    except UsageError as err:
        train_parser.error(str(err))  # one line, exit code 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
