"""tf.data pipelines for side-by-side pairs: decode -> split halves -> jitter (train) or resize (eval) -> [-1, 1]."""

from __future__ import annotations

import hashlib
import os
from typing import Callable

import tensorflow as tf

from ..config import TrainConfig
from ..errors import UsageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
LOAD_SCALE = 286 / 256  # the paper resizes 256 -> 286 before the random 256 crop
AUTOTUNE = tf.data.AUTOTUNE
CACHE_RAM_SHARE = 0.25  # --cache auto keeps decoded pairs in memory up to this share of RAM (held twice)


def list_images(data_dir: str, split: str) -> list[str] | list[tuple[str, str]]:
    """Sorted pairs of `split`: side-by-side files, or (A, B) file pairs in the A/ B/ layout.

    Two layouts are accepted: `data_dir/split/*.jpg` with both images side by side (A = LEFT half),
    or separate images with matching file names in `data_dir/A/split/` and `data_dir/B/split/`
    (junyanz's layout before combine_A_and_B.py; `data_dir/split/A/` and `split/B/` work too).

    Raises:
        UsageError: the folder is missing or holds no JPEG/PNG files, or A/ and B/ names differ.
    """
    for a_dir, b_dir in ((os.path.join(data_dir, "A", split), os.path.join(data_dir, "B", split)),
                         (os.path.join(data_dir, split, "A"), os.path.join(data_dir, split, "B"))):
        if os.path.isdir(a_dir) and os.path.isdir(b_dir):
            return _ab_pairs(a_dir, b_dir)
    split_dir = os.path.join(data_dir, split)
    if not os.path.isdir(split_dir):
        raise UsageError(
            f"{split_dir} does not exist: --data-dir must hold {split}/ with side-by-side pair images "
            f"(or A/{split}/ and B/{split}/ with matching file names)"
        )
    files = [os.path.join(split_dir, name) for name in _image_names(split_dir)]
    if not files:
        raise UsageError(f"no images found in {split_dir}: expected {'/'.join(IMAGE_EXTENSIONS)} files")
    return files


def _image_names(folder: str) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("."))


def _ab_pairs(a_dir: str, b_dir: str) -> list[tuple[str, str]]:
    a_names, b_names = _image_names(a_dir), _image_names(b_dir)
    if not a_names:
        raise UsageError(f"no images found in {a_dir}: expected {'/'.join(IMAGE_EXTENSIONS)} files")
    unmatched = sorted(set(a_names) ^ set(b_names))
    if unmatched:
        raise UsageError(
            f"{a_dir} and {b_dir} must hold the same file names; {len(unmatched)} differ, e.g. {unmatched[0]!r}"
        )
    return [(os.path.join(a_dir, n), os.path.join(b_dir, n)) for n in a_names]


def load_pair(path, direction: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Reads one pair into (input, target) uint8 images; A is the LEFT half (or the A/ file).

    `path` is what a pipeline element holds: a scalar path of a side-by-side file, a [2] tensor of
    (A path, B path) for the A/ B/ layout, or a dict of encoded `a`/`b` images (the TFDS source).
    """
    if isinstance(path, dict):
        left, right = (tf.io.decode_image(path[k], channels=3, expand_animations=False) for k in ("a", "b"))
    elif path.shape.rank == 1:
        left, right = (tf.io.decode_image(tf.io.read_file(path[i]), channels=3, expand_animations=False) for i in (0, 1))
        # random_jitter stacks the two on the channel axis, so they must agree in size.
        tf.debugging.assert_equal(tf.shape(left)[:2], tf.shape(right)[:2], message="A and B images of a pair differ in size")
    else:
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


def as_rgb(images: tf.Tensor) -> tf.Tensor:
    """uint8 [..., C]: gray (1), gray + alpha (2), RGB (3) or RGBA (4) -> RGB [..., 3]; alpha is dropped.

    Works on a channel count known only at run time (a serving signature accepting any image).
    """
    index = tf.where(tf.shape(images)[-1] < 3, tf.zeros(3, tf.int32), tf.range(3))
    return tf.gather(images, index, axis=-1)


def checked_image_batch(images: tf.Tensor) -> tf.Tensor:
    """A serving signature's uint8 input, checked: rank 4 and 1-4 channels, else a request error naming the fix.

    A loaded signature does not enforce its TensorSpec: say what is wrong with the input rather than fail
    inside the first conv. The rank needs EnsureShape: an assert on tf.rank is folded away using the declared
    rank, and a rank-3 batch would then abort the process in oneDNN's conv.
    """
    images = tf.ensure_shape(images, (None, None, None, None))
    tf.debugging.assert_equal(
        tf.reduce_any(tf.equal(tf.shape(images)[-1], [1, 2, 3, 4])), True,
        message="images must be uint8 [batch, height, width, C] with C = 1 (gray), 2 (gray+alpha), 3 (RGB) "
        "or 4 (RGBA); or send encoded files to translate_encoded",
    )
    return images


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
    # Bilinear for label maps too, though it blends class colours at edges: the FCN judge scored nearest
    # within the seed spread of it, the two seeds disagreeing (BENCHMARKS.md, trainer parity).
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


def _sources(files: list | tf.data.Dataset) -> tf.data.Dataset:
    """What list_images returns (or a TFDS split) as a dataset of load_pair elements."""
    return files if isinstance(files, tf.data.Dataset) else tf.data.Dataset.from_tensor_slices(files)


def cache_file(cache_dir: str, files: list | tf.data.Dataset, direction: str, name: str = "") -> str:
    """The on-disk cache prefix for these files: named by a fingerprint of the list, sizes, times and direction.

    A changed file, list or direction gives a new name, so a stale cache is never read. A TFDS
    split (a dataset, not files) is fingerprinted by `name` and its length.

    Raises:
        UsageError: the folder cannot be created.
    """
    digest = hashlib.sha1(f"{direction}|{name}|{len(files)}\n".encode())
    paths = [] if isinstance(files, tf.data.Dataset) else [p for pair in files for p in ([pair] if isinstance(pair, str) else pair)]
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--cache {cache_dir}: cannot create the cache folder ({err.strerror}); pass a writable folder, 'memory' or 'none'") from err
    prefix = os.path.join(cache_dir, f"train-{digest.hexdigest()[:16]}")
    if not os.path.exists(prefix + ".index"):
        # A run killed while filling the cache leaves a lockfile that would make tf.data refuse it forever.
        for name in os.listdir(cache_dir):
            if name.startswith(os.path.basename(prefix) + "."):
                os.remove(os.path.join(cache_dir, name))
    return prefix


def resolve_cache(files: list | tf.data.Dataset, config: TrainConfig) -> str:
    """--cache auto: "memory" when the decoded split takes at most CACHE_RAM_SHARE of RAM, else "none".

    The decoded pairs are held twice (the cache and the full shuffle buffer), so a split that does
    not fit comfortably (edges2shoes: ~20 GB decoded) must stream from the files instead.
    """
    if config.cache != "auto":
        return config.cache
    if isinstance(files, tf.data.Dataset) or not files:
        return "none"  # a TFDS split: its size is not known without reading it
    first = files[0] if isinstance(files[0], str) else files[0][0]
    height, width = tf.io.decode_image(tf.io.read_file(first), channels=3, expand_animations=False).shape[:2]
    decoded = height * width * 3 * (1 if isinstance(files[0], str) else 2) * len(files)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return "memory" if decoded <= CACHE_RAM_SHARE * ram else "none"


def decoded_pairs(files: list | tf.data.Dataset, config: TrainConfig, cache: str) -> tf.data.Dataset:
    """(input, target) uint8 pairs in file order, decoded once and cached in memory or in the `cache` folder."""
    # Ordered (parallel) decoding: the cache must hold the files in list order for seeded shuffles to match.
    ds = _sources(files).map(lambda path: load_pair_channels(path, config), num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.cache() if cache == "memory" else ds.cache(train_cache_file(files, config))


def train_cache_file(files: list | tf.data.Dataset, config: TrainConfig) -> str:
    """`cache_file` under the --cache folder, keyed also by what decoding depends on besides the files."""
    key = f"{config.dataset}|{config.resolved_input_channels}|{config.resolved_output_channels}"
    return cache_file(config.cache, files, config.direction, key)


def make_train_dataset(
    files: list | tf.data.Dataset, config: TrainConfig, start_step: int = 0, example_fn: Callable | None = None
) -> tf.data.Dataset:
    """Infinite shuffled, jittered, batched (input, target) stream.

    The stream is a pure function of `config.seed`: reshuffled every pass, with per-element
    augmentation seeds drawn from a seeded random dataset. `start_step` skips the batches an
    interrupted run already consumed (before decoding, so it is cheap), so a resumed run sees
    the same data it would have seen uninterrupted. `example_fn(path, seed) -> (x, y)` reads one
    example (default: a jittered pair with the config's channel counts). Without an `example_fn`
    and unless the cache resolves to "none", files are decoded once (the first batch waits for that
    pass) and later passes read the cache.
    """
    cache = resolve_cache(files, config) if example_fn is None else "none"
    if cache != "none":
        # The shuffle below permutes by seed and count alone, so cached pairs come in the same order as paths would.
        sources = decoded_pairs(files, config, cache)
        example_fn = lambda pair, seed: random_jitter(*pair, config.image_size, seed)  # noqa: E731
    else:
        sources = _sources(files)
        example_fn = example_fn or (
            lambda path, seed: random_jitter(*load_pair_channels(path, config), config.image_size, seed)
        )
    sources = sources.shuffle(len(files), seed=config.seed, reshuffle_each_iteration=True).repeat()
    seeds = tf.data.Dataset.random(seed=config.seed).batch(2)
    ds = tf.data.Dataset.zip(sources, seeds).skip(start_step * config.batch_size)
    ds = ds.map(
        example_fn,
        num_parallel_calls=AUTOTUNE,
        deterministic=config.deterministic,
    )
    # Full batches only: BatchNorm statistics of a 1-image remainder batch would be noise.
    ds = ds.batch(config.batch_size, drop_remainder=True)
    return ds.prefetch(AUTOTUNE).with_options(_options(config.deterministic))


def make_eval_dataset(
    files: list | tf.data.Dataset, config: TrainConfig, batch_size: int | None = None, example_fn: Callable | None = None
) -> tf.data.Dataset:
    """Finite (input, target) batches in file order, resized only.

    `files` is what list_images returns, or a finite dataset of load_pair elements (the TFDS source);
    `example_fn(path) -> (x, y)` reads one example (default: a resized pair with the config's channel counts).
    """
    example_fn = example_fn or (lambda path: resize_pair(*load_pair_channels(path, config), config.image_size))
    ds = _sources(files).map(example_fn, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size or config.batch_size).prefetch(AUTOTUNE)


def steps_per_epoch(num_files: int, config: TrainConfig) -> int:
    """One pass over the train split in full batches, capped by --steps-per-epoch."""
    steps = max(1, num_files // config.batch_size)
    return min(steps, config.steps_per_epoch) if config.steps_per_epoch else steps
