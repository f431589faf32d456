"""tf.data pipelines for side-by-side pairs: decode -> split halves -> jitter (train) or resize (eval) -> [-1, 1]."""

from __future__ import annotations

import os
from typing import Callable

import tensorflow as tf

from .config import TrainConfig, UsageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
LOAD_SCALE = 286 / 256  # the paper resizes 256 -> 286 before the random 256 crop
AUTOTUNE = tf.data.AUTOTUNE


def list_images(data_dir: str, split: str) -> list[str]:
    """Sorted image files of `data_dir/split`.

    Raises:
        UsageError: the folder is missing or holds no JPEG/PNG files.
    """
    split_dir = os.path.join(data_dir, split)
    if not os.path.isdir(split_dir):
        raise UsageError(f"{split_dir} does not exist: --data-dir must hold {split}/ with side-by-side pair images")
    files = sorted(
        os.path.join(split_dir, name)
        for name in os.listdir(split_dir)
        if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
    )
    if not files:
        raise UsageError(f"no images found in {split_dir}: expected {'/'.join(IMAGE_EXTENSIONS)} files")
    return files


def load_pair(path: tf.Tensor, direction: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Reads one side-by-side file into (input, target) uint8 halves; A is the LEFT half."""
    # channels=3 turns grayscale and RGBA files into RGB, so every pair has one layout.
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    half = tf.shape(image)[1] // 2
    left, right = image[:, :half], image[:, half : 2 * half]
    return (left, right) if direction == "AtoB" else (right, left)


def to_channels(image: tf.Tensor, channels: int) -> tf.Tensor:
    """A decoded uint8 RGB image [h, w, 3] with the channel count a task asks for: 3 as is, 1 as luma."""
    if channels == 3:
        return image
    if channels == 1:
        return tf.image.rgb_to_grayscale(image)  # ITU-R 601 luma, the usual grayscale
    raise UsageError(f"images can be read with 1 (grayscale) or 3 (RGB) channels, not {channels}")


def load_pair_channels(path: tf.Tensor, config: TrainConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """`load_pair` converted to --input-channels / --output-channels (grayscale -> RGB, RGB -> depth, ...)."""
    input_image, target_image = load_pair(path, config.direction)
    input_image = to_channels(input_image, config.resolved_input_channels)
    return input_image, to_channels(target_image, config.resolved_output_channels)


def to_float(image: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], the range of the generator's tanh."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounding and clipping."""
    return tf.cast(tf.clip_by_value(tf.round((tf.cast(image, tf.float32) + 1.0) * 127.5), 0, 255), tf.uint8)


def load_size(image_size: tuple[int, int]) -> tuple[int, int]:
    """The pre-crop size: 286 for 256, scaled the same way for other sizes."""
    return tuple(int(round(side * LOAD_SCALE)) for side in image_size)


def random_jitter(
    input_image: tf.Tensor, target_image: tf.Tensor, image_size: tuple[int, int], seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Resize to the load size, random crop, random mirror; one draw applied to both halves.

    Stacking the halves on the channel axis makes the crop and flip identical by construction.
    `seed` is a shape-[2] stateless seed, so the augmentation of a given element is reproducible.
    """
    in_channels = input_image.shape[-1] or 3
    pair = tf.concat([to_float(input_image), to_float(target_image)], axis=-1)  # [h, w, 6]
    pair = jitter_stack(pair, image_size, seed)
    return pair[..., :in_channels], pair[..., in_channels:]


def jitter_stack(images: tf.Tensor, image_size: tuple[int, int], seed: tf.Tensor) -> tf.Tensor:
    """The paper's jitter of one float [h, w, C] stack: resize to the load size, random crop, random mirror."""
    images = tf.image.resize(images, load_size(image_size))  # [286, 286, C] at 256
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    images = tf.image.stateless_random_crop(images, (*image_size, images.shape[-1]), seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(images, seed=flip_seed)


def resize_pair(input_image: tf.Tensor, target_image: tf.Tensor, image_size: tuple[int, int]):
    """Eval-time mapping: resize only, to [-1, 1]."""
    return (tf.image.resize(to_float(input_image), image_size), tf.image.resize(to_float(target_image), image_size))


def _options(deterministic: bool) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = deterministic
    return options


def make_train_dataset(
    files: list[str], config: TrainConfig, start_step: int = 0, example_fn: Callable | None = None
) -> tf.data.Dataset:
    """Infinite shuffled, jittered, batched (input, target) stream.

    The stream is a pure function of `config.seed`: reshuffled every pass, with per-element
    augmentation seeds drawn from a seeded random dataset. `start_step` skips the batches an
    interrupted run already consumed (before decoding, so it is cheap), so a resumed run sees
    the same data it would have seen uninterrupted. `example_fn(path, seed) -> (x, y)` reads one
    example (default: a jittered pair with the config's channel counts).
    """
    example_fn = example_fn or (
        lambda path, seed: random_jitter(*load_pair_channels(path, config), config.image_size, seed)
    )
    paths = tf.data.Dataset.from_tensor_slices(files)
    paths = paths.shuffle(len(files), seed=config.seed, reshuffle_each_iteration=True).repeat()
    seeds = tf.data.Dataset.random(seed=config.seed).batch(2)
    ds = tf.data.Dataset.zip(paths, seeds).skip(start_step * config.batch_size)
    ds = ds.map(
        example_fn,
        num_parallel_calls=AUTOTUNE,
        deterministic=config.deterministic,
    )
    # Full batches only: BatchNorm statistics of a 1-image remainder batch would be noise.
    ds = ds.batch(config.batch_size, drop_remainder=True)
    return ds.prefetch(AUTOTUNE).with_options(_options(config.deterministic))


def make_eval_dataset(
    files: list[str], config: TrainConfig, batch_size: int | None = None, example_fn: Callable | None = None
) -> tf.data.Dataset:
    """Finite (input, target) batches in file order, resized only; `example_fn(path)` as in make_train_dataset."""
    example_fn = example_fn or (lambda path: resize_pair(*load_pair_channels(path, config), config.image_size))
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.map(example_fn, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size or config.batch_size).prefetch(AUTOTUNE)


def steps_per_epoch(num_files: int, config: TrainConfig) -> int:
    """One pass over the train split in full batches, capped by --steps-per-epoch."""
    steps = max(1, num_files // config.batch_size)
    return min(steps, config.steps_per_epoch) if config.steps_per_epoch else steps
