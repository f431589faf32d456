"""The paired task (the paper's): side-by-side image pairs, input half -> output half, 1 or 3 channels each."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from ..data.pairs import as_rgb, checked_image_batch, list_images, load_pair, to_channels, to_float, to_uint8
from ..data.synthetic import write_synthetic_dataset
from ..inference import MAX_PIXELS, decode_within_cap, size_multiple, translate_own_size, within_cap


def paired_to_rgb(x: tf.Tensor, y: tf.Tensor | None = None) -> tf.Tensor:
    """The input x (or an output/target y) in [-1, 1] as RGB: 3 channels as they are, 1 channel as gray."""
    image = x if y is None else y
    return tf.image.grayscale_to_rgb(image) if image.shape[-1] == 1 else image


def preprocess(images: tf.Tensor, size: tuple[int, int], channels: int = 3) -> tf.Tensor:
    """uint8 [N, h, w, C] of any size -> float32 [-1, 1] at the model size (bilinear, antialiased when shrinking).

    Gray, RGB and RGBA inputs all work: they are made RGB, then gray when the model takes 1 channel.
    """
    return tf.image.resize(to_float(to_channels(as_rgb(images), channels)), size, antialias=True)


def postprocess(outputs: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Generator output [-1, 1] -> uint8 at `size` (the caller's original height, width)."""
    return to_uint8(tf.image.resize(outputs, size, antialias=True))


def _split_files(folder: str) -> list:
    """The pair files of a split folder, in any layout data.pairs.list_images reads (it raises UsageError on none)."""
    folder = os.path.abspath(folder)
    return list_images(os.path.dirname(folder), os.path.basename(folder))


@dataclasses.dataclass(frozen=True)
class PairedTask:
    """Side-by-side pairs (or the A/ B/ layout) read with `input_channels` / `output_channels` (1 or 3)."""

    input_channels: int = 3
    output_channels: int = 3
    name: str = "paired"
    reads_pairs: bool = True
    synthetic_folder: str = "synthetic"
    train_example: Callable | None = None  # data.pairs' pipeline (cached, jittered pairs)
    eval_example: Callable | None = None

    def list_files(self, data_dir: str, split: str) -> list:
        return list_images(data_dir, split)

    def write_synthetic(self, root: str, count: int, size: int, seed: int) -> str:
        return write_synthetic_dataset(root, count, size=size, seed=seed)

    def split_folder(self, data_dir: str, split: str) -> str:
        return os.path.join(data_dir, split)

    def read_inputs(self, folder: str, direction: str, size: tuple[int, int], count: int) -> np.ndarray:
        """The input halves of the first `count` pairs of a split folder, in any layout data.pairs.list_images reads
        (side-by-side files, or DATA/A/train + DATA/B/train, or DATA/train/A + DATA/train/B).

        Raises:
            UsageError: the folder is missing or holds no images.
        """
        inputs = [
            tf.image.resize(to_float(to_channels(load_pair(tf.constant(path), direction)[0], self.input_channels)), size).numpy()
            for path in _split_files(folder)[:count]
        ]
        return np.stack(inputs).astype(np.float32)

    def input_size(self, folder: str, direction: str) -> tuple[int, int]:
        """(height, width) of the first pair's input half in a split folder, as stored.

        Raises:
            UsageError: the folder is missing or holds no images.
        """
        return tuple(int(side) for side in load_pair(tf.constant(_split_files(folder)[0]), direction)[0].shape[:2])

    def to_rgb(self, x: tf.Tensor, y: tf.Tensor | None = None) -> tf.Tensor:
        return paired_to_rgb(x, y)

    def translate(self, run: Callable, images: tf.Tensor, size: tuple[int, int], resize_mode: str = "squash",
                  multiple: int = 1, max_pixels: int = MAX_PIXELS) -> tf.Tensor:
        if resize_mode == "squash":
            return postprocess(run(preprocess(images, size, self.input_channels)), tf.shape(images)[1:3])
        x = to_float(to_channels(as_rgb(images), self.input_channels))
        return to_uint8(translate_own_size(run, x, multiple, max_pixels))

    def serving_functions(
        self, net: Callable, size: tuple[int, int], resize_mode: str = "own", max_pixels: int = MAX_PIXELS
    ) -> dict[str, tuple[Callable, list[tf.TensorSpec]]]:
        """serving_default: uint8 images [N, h, w, C] (C = 1, 2, 3 or 4; any size) -> {"images": uint8 [N, h, w, Cout]}.
        translate_encoded: PNG/JPEG/BMP bytes [N] -> {"image_bytes": PNGs}, each at its own size.
        translate_float: the network itself, as in TFLite: [N, H, W, Cin] -> {"images": [N, H, W, Cout]}, both [-1, 1].

        An image over `max_pixels` (own size: padded) is refused before anything is allocated for it: an encoded
        one from its header, before decoding; the encoded images of a request are decoded one at a time.
        """
        channels, multiple = self.input_channels, size_multiple(net)
        cap_multiple = multiple if resize_mode == "own" else 1  # own size pads each side to the multiple

        def run(x):
            return net(x, training=False)

        def translate(images):  # uint8 [N, h, w, C] -> uint8 [N, h, w, Cout]
            return self.translate(run, images, size, resize_mode, multiple, max_pixels)

        def translate_images(images):
            images = checked_image_batch(images)
            shape = tf.shape(images)
            return {"images": translate(within_cap(images, shape[1], shape[2], max_pixels, cap_multiple))}

        def translate_encoded(image_bytes):
            def decode(data):
                return decode_within_cap(data, max_pixels, cap_multiple)

            # parallel_iterations=1: one full-size image at a time, so a request's peak is one image's, whatever
            # its length.
            if resize_mode == "own":  # images differ in size: one generator call each

                def own(data):
                    return tf.io.encode_png(translate(decode(data)[tf.newaxis])[0])

                return {"image_bytes": tf.map_fn(own, image_bytes, fn_output_signature=tf.TensorSpec((), tf.string),
                                                 parallel_iterations=1)}  # fmt: skip

            def squash(data):
                image = decode(data)
                return preprocess(image[tf.newaxis], size, channels)[0], tf.shape(image)[:2]

            inputs, sizes = tf.map_fn(
                squash, image_bytes, parallel_iterations=1,
                fn_output_signature=(tf.TensorSpec((*size, channels), tf.float32), tf.TensorSpec((2,), tf.int32)),
            )  # [N, H, W, channels], [N, 2]: one batched generator call at the model size
            outputs = run(inputs)
            encoded = tf.map_fn(
                lambda args: tf.io.encode_png(postprocess(args[0][tf.newaxis], args[1])[0]),
                (outputs, sizes), fn_output_signature=tf.TensorSpec((), tf.string), parallel_iterations=1,
            )
            return {"image_bytes": encoded}

        def translate_float(images):
            return {"images": run(tf.ensure_shape(images, (None, *size, channels)))}  # checked, as in translate_images

        return {
            "serving_default": (translate_images, [tf.TensorSpec((None, None, None, None), tf.uint8, name="images")]),
            "translate_encoded": (translate_encoded, [tf.TensorSpec((None,), tf.string, name="image_bytes")]),
            "translate_float": (translate_float, [tf.TensorSpec((None, *size, channels), tf.float32, name="images")]),
        }
