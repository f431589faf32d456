"""The generator as deployed: the test-time mode (eval or the paper's) and translation at an image's own size."""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf
from keras import layers, ops

from .errors import UsageError

# --test-mode: "eval" = moving BatchNorm statistics, no dropout (training=False, deterministic);
# "paper" = the paper's test time: dropout on and batch statistics of each image alone (training=True at batch 1).
TEST_MODES = ("eval", "paper")
# --resize-mode: "own" = translate at the image's own size (padded to a multiple of 2^depth, cropped back);
# "squash" = resize to the training size and back.
RESIZE_MODES = ("own", "squash")
# The served signatures' cap on pixels per image (own size: padded pixels). Activations grow with the pixel count
# (the 54 M-param U-Net's layer outputs sum to about 60 MB of float32 per 256x256 image), so 2048x2048 (64x that)
# bounds one own-size image near 4 GB instead of letting a 10000x10000 upload exhaust memory; squash holds only a few
# copies of the image (a 2048x2048 PNG raised a served squash model's peak memory by 77 MB).
MAX_PIXELS = 2048 * 2048
# What the encoded-image signatures decode: the formats whose header states the size tf.io.decode_image allocates.
# GIF is not one (TensorFlow's canvas is the largest of its frames, each declared in the body, and every frame is
# decoded), nor WebP or JPEG XL (size fields TensorFlow reads deep in their own containers).
ENCODINGS = "PNG, JPEG or BMP"


class PerImageBatchNorm(layers.Layer):
    """A trained BatchNormalization run with the statistics of each image alone (training-mode BN at batch 1).

    Uses the wrapped layer's gamma, beta and epsilon, never updates its moving statistics, and ignores the
    training flag: the paper's test-time normalization, independent of whatever else is in the batch.
    """

    def __init__(self, norm: layers.BatchNormalization, **kwargs):
        super().__init__(name=norm.name, **kwargs)
        self.norm = norm  # tracked: its gamma/beta are shared with the trained generator, not copied

    def call(self, x, training=None, mask=None):  # the node passes BN's own call arguments; both are ignored
        x = ops.cast(x, "float32")
        # Biased variance over H, W of one image and channel: what BN's training mode computes at batch 1.
        mean, variance = ops.moments(x, axes=(1, 2), keepdims=True)
        return (x - mean) * ops.rsqrt(variance + self.norm.epsilon) * self.norm.gamma + self.norm.beta


class ActiveDropout(layers.Layer):
    """Dropout that stays on whatever the training flag: the paper's test-time noise (Isola et al. 2017, sec. 3.1)."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None, mask=None):
        return keras.random.dropout(x, self.rate, seed=self.seed_generator)


def model_size(generator: keras.Model) -> tuple[int, int]:
    """(height, width) the generator was built for."""
    return tuple(int(side) for side in generator.input_shape[1:3])


def size_multiple(generator: keras.Model) -> int:
    """2^depth: the U-Net's stride-2 downsamples need each side to be a multiple of it."""
    downsamples = sum(
        1 for layer in generator.layers if isinstance(layer, layers.Conv2D) and tuple(layer.strides) == (2, 2)
    )
    return 2**downsamples


def inference_generator(
    generator: keras.Model, test_mode: str = "eval", any_size: bool = True, seed: int | None = None
) -> keras.Model:
    """The trained generator as a model for inference: same layers and weights (shared, not copied).

    Args:
        generator: the functional U-Net from core.networks.build_generator (or a .keras file of it).
        test_mode: "eval" runs it as trained with training=False; "paper" swaps each BatchNormalization
            for PerImageBatchNorm and each Dropout for ActiveDropout, so every call draws new dropout
            masks and normalizes each image by its own statistics.
        any_size: accept [N, H, W, C] for any H, W that are multiples of size_multiple(generator);
            False keeps the generator's fixed input size (TFLite needs one).
        seed: seeds the paper mode's dropout masks (layer i gets seed + i; None: fresh seeds), so two
            models built with one seed draw the same masks call for call.

    Returns:
        A functional model to call with training=False (the paper mode's layers ignore the flag).

    Raises:
        UsageError: an unknown test mode.
    """
    if test_mode not in TEST_MODES:
        raise UsageError(f"--test-mode {test_mode!r}: choose one of {', '.join(TEST_MODES)}")
    if test_mode == "eval" and not any_size:
        return generator

    dropouts = [layer for layer in generator.layers if isinstance(layer, layers.Dropout)]

    def swap(layer: layers.Layer) -> layers.Layer:
        if test_mode == "paper" and isinstance(layer, layers.BatchNormalization):
            return PerImageBatchNorm(layer)
        if test_mode == "paper" and isinstance(layer, layers.Dropout):
            # One seed per layer: equal seeds would give equal random streams, i.e. correlated masks.
            layer_seed = None if seed is None else seed + dropouts.index(layer)
            return ActiveDropout(layer.rate, seed=layer_seed, name=layer.name)
        return layer  # the same layer object: its weights are shared

    shape = (None, None, generator.input_shape[-1]) if any_size else generator.input_shape[1:]
    inputs = keras.Input(shape, name=generator.inputs[0].name)
    return keras.models.clone_model(generator, input_tensors=inputs, clone_function=swap)


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """Each side rounded up to a multiple of `multiple`."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def scale_mismatch(height: int, width: int, trained: tuple[int, int], what: str = "the image") -> str:
    """A warning when own-size translation would run a model well above the scale it was trained at, else "".

    A generator learns textures at its training scale: on an image 1.5x its training size or more (a 128 px
    model given 256 px label maps), --resize-mode own repeats texture tiles instead of painting the scene.
    """
    ratio = min(height / trained[0], width / trained[1])
    if ratio < 1.5:
        return ""
    return (f"{what} is {width}x{height} px, {ratio:.1f}x the {trained[1]}x{trained[0]} the model was trained at: "
            "at its own size (--resize-mode own) such a model repeats texture tiles; --resize-mode squash "
            "translates at the training size")


def check_own_size(
    height: int, width: int, multiple: int, max_pixels: int = MAX_PIXELS, what: str = "the image"
) -> None:
    """Raises UsageError when own-size translation of a `height` x `width` image would pass `max_pixels`."""
    padded_h, padded_w = padded_size(height, width, multiple)
    if padded_h * padded_w > max_pixels:
        raise UsageError(
            f"{what} is {width}x{height} px (padded {padded_w}x{padded_h}), over the own-size cap of {max_pixels} "
            "pixels: use --resize-mode squash, a smaller image, or a larger --max-pixels if memory allows"
        )


def assert_within_cap(
    height: tf.Tensor, width: tf.Tensor, max_pixels: int, multiple: int = 1
) -> tf.Operation | None:
    """An op that fails with InvalidArgumentError when a `height` x `width` image, each side padded up to a
    multiple of `multiple`, has more than `max_pixels` pixels. The message names the size, the cap and the flag.
    """
    height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
    padded_h, padded_w = (height + multiple - 1) // multiple * multiple, (width + multiple - 1) // multiple * multiple
    padded = f" (padded to a multiple of {multiple}: {{}}x{{}})" if multiple > 1 else ""
    message = tf.strings.format(
        "the image is {}x{} px" + padded + f", over the cap of {max_pixels} pixels (height x width) this model was "
        "exported with: send a smaller image, or re-export with a larger --max-pixels (python export.py, "
        "pix2pix-export; memory grows with it)",
        [width, height, padded_w, padded_h] if multiple > 1 else [width, height],
    )  # fmt: skip
    return tf.debugging.Assert(padded_h * padded_w <= max_pixels, [message])


def within_cap(tensor: tf.Tensor, height: tf.Tensor, width: tf.Tensor, max_pixels: int, multiple: int = 1) -> tf.Tensor:
    """`tensor`, released only once `assert_within_cap` passed.

    In a graph an assert runs beside the ops that do not use its result (the executor starts every op whose
    inputs are ready), so an oversized image would be decoded or converted while the check fails: the control
    dependency makes every op reading the result wait for it.
    """
    with tf.control_dependencies([assert_within_cap(height, width, max_pixels, multiple)]):
        return tf.identity(tensor)


def _header_number(head: tf.Tensor, start: int, big_endian: bool) -> tf.Tensor:
    """The unsigned 32-bit integer stored at head[start : start + 4] (int64 bytes), as int64."""
    shifts = tf.constant([24, 16, 8, 0] if big_endian else [0, 8, 16, 24], tf.int64)
    return tf.reduce_sum(tf.bitwise.left_shift(head[start : start + 4], shifts))


def encoded_image_size(data: tf.Tensor) -> tf.Tensor:
    """(height, width), int64 [2], of PNG, JPEG or BMP bytes, read from the header without decoding any pixel.

    The fields read are those tf.io.decode_image allocates its output from: PNG's IHDR (the first chunk, which
    libpng requires), JPEG's frame header (tf.io.extract_jpeg_shape, libjpeg's own header reader) and BMP's
    info header (int32 little-endian; a negative height stores the rows top-down). TensorFlow reads a header on
    its own for JPEG only, so PNG's and BMP's fixed-offset fields are read here from the first 26 bytes.

    Raises:
        tf.errors.InvalidArgumentError: when run on anything else (GIF, WebP, JPEG XL, not an image) or on a
            JPEG whose header is broken.
    """
    # The first 26 bytes, zero-padded, so that a short input reads as "not an image" rather than failing substr.
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(data, 0, 26), b"\0" * 26]), 0, 26)
    head = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)  # [26]

    def starts(magic: bytes, at: int = 0) -> tf.Tensor:
        return tf.reduce_all(tf.equal(head[at : at + len(magic)], tf.constant(list(magic), tf.int64)))

    is_png = starts(b"\x89PNG\r\n\x1a\n") & starts(b"IHDR", 12)
    is_jpeg, is_bmp = starts(b"\xff\xd8\xff"), starts(b"BM")
    png_size = tf.stack([_header_number(head, 20, True), _header_number(head, 16, True)])
    bmp_size = tf.stack([_header_number(head, 22, False), _header_number(head, 18, False)])
    bmp_size = tf.abs(tf.where(bmp_size >= 2**31, bmp_size - 2**32, bmp_size))  # int32 fields
    known = tf.debugging.Assert(
        is_png | is_jpeg | is_bmp,
        [f"image_bytes must be {ENCODINGS} files (their header states the size before decoding; GIF, WebP and "
         "JPEG XL do not): convert the image to PNG"],
    )  # fmt: skip
    with tf.control_dependencies([known]):
        return tf.cond(
            is_jpeg,
            lambda: tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64),  # only on JPEG bytes: it raises on others
            lambda: tf.where(is_png, png_size, bmp_size),
        )


def decode_within_cap(data: tf.Tensor, max_pixels: int, multiple: int = 1) -> tf.Tensor:
    """PNG/JPEG/BMP bytes -> uint8 RGB [h, w, 3]; refused from the header, before decoding, when over the cap.

    Args:
        data: one encoded image, a scalar string.
        max_pixels: the cap on height x width, each side padded up to a multiple of `multiple` first.
        multiple: 2^depth for own-size translation (which pads to it), 1 for squash.

    Raises:
        tf.errors.InvalidArgumentError: when run on another format or an image over the cap (see assert_within_cap).
    """
    size = encoded_image_size(data)
    data = within_cap(data, size[0], size[1], max_pixels, multiple)
    return tf.io.decode_image(data, channels=3, expand_animations=False)  # gray and RGBA files become RGB


def _reflect_indices(size: tf.Tensor, before: tf.Tensor, after: tf.Tensor) -> tf.Tensor:
    """Indices of a side `size` long, extended by `before` / `after` mirrored positions (edge not repeated).

    Mirroring by index rather than tf.pad(mode="REFLECT"), which refuses pads longer than the side
    (a 20 px image padded to 256): here the mirror repeats as often as needed.
    """
    period = tf.maximum(2 * (size - 1), 1)  # a 1 px side repeats its only pixel
    index = tf.math.floormod(tf.range(-before, size + after), period)
    return tf.where(index >= size, period - index, index)


def translate_own_size(
    run: Callable[[tf.Tensor], tf.Tensor], images: tf.Tensor, multiple: int, max_pixels: int = MAX_PIXELS
) -> tf.Tensor:
    """Runs `run` on float images [N, h, w, C] at their own size: reflect-padded to a multiple, cropped back.

    The padding is split evenly between the two sides of each axis and mirrors the image, so the border
    continues the picture's own content. Constant padding would add a flat frame the generator never saw
    in training; through the U-Net's image-wide receptive field (and, in paper mode, the per-image
    statistics) it would tint the whole output, not just the border.

    Raises:
        tf.errors.InvalidArgumentError: the padded image has more than `max_pixels` pixels (checked before the
            padding, so nothing is allocated for it).
    """
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    images = within_cap(images, height, width, max_pixels, multiple)
    top, left = pad_h // 2, pad_w // 2
    padded = tf.gather(images, _reflect_indices(height, top, pad_h - top), axis=1)
    padded = tf.gather(padded, _reflect_indices(width, left, pad_w - left), axis=2)  # [N, h + pad_h, w + pad_w, C]
    outputs = run(padded)  # [N, h + pad_h, w + pad_w, Cout]
    return outputs[:, top : top + height, left : left + width]  # [N, h, w, Cout]
