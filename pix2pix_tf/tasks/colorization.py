"""Colorization as a pix2pix task: sRGB <-> CIE Lab in the graph, and ordinary photo folders as L -> ab examples."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from ..data.pairs import IMAGE_EXTENSIONS, as_rgb, checked_image_batch, jitter_stack, to_float, to_uint8
from ..data.synthetic import write_synthetic_photos
from ..errors import UsageError
from ..inference import MAX_PIXELS, decode_within_cap, size_multiple, translate_own_size, within_cap

# sRGB (IEC 61966-2-1) primaries -> CIE XYZ, and the D65 white point (2 degree observer).
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)  # inverted in float64, so the round trip is exact up to float32 rounding
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6.0 / 29.0  # where CIE's f(t) switches from the cube root to its linear toe

# The PyTorch original's colorization scaling: L in [0, 100] -> L / 50 - 1; a, b -> a / 110, b / 110.
# 110 covers the sRGB gamut (a in [-86, 98], b in [-108, 95]), so tanh can reach every colour.
L_SCALE, AB_SCALE = 50.0, 110.0


def _matmul_last(x: tf.Tensor, matrix: np.ndarray) -> tf.Tensor:
    """matrix @ x over the last axis of x [..., 3]."""
    return tf.einsum("...c,dc->...d", x, tf.constant(matrix, tf.float32))


def rgb_to_lab(rgb: tf.Tensor) -> tf.Tensor:
    """sRGB in [0, 1] [..., 3] -> CIE L*a*b* (D65): L in [0, 100], a and b roughly in [-110, 110].

    Pure red gives L 53.24, a 80.09, b 67.20 (the published values).
    """
    rgb = tf.clip_by_value(tf.convert_to_tensor(rgb, tf.float32), 0.0, 1.0)
    # sRGB decoding; tf.maximum keeps pow away from the branch not taken (no NaN gradients).
    linear = tf.where(rgb <= 0.04045, rgb / 12.92, tf.pow((tf.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4))
    xyz = _matmul_last(linear, _RGB_TO_XYZ / _WHITE_D65[:, None])  # white-normalized XYZ
    f = tf.where(xyz > _DELTA**3, tf.pow(tf.maximum(xyz, _DELTA**3), 1.0 / 3.0), xyz / (3 * _DELTA**2) + 4.0 / 29.0)
    fx, fy, fz = tf.unstack(f, axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: tf.Tensor) -> tf.Tensor:
    """CIE L*a*b* (D65) [..., 3] -> sRGB in [0, 1]; colours outside the sRGB gamut are clipped."""
    lightness, a, b = tf.unstack(tf.convert_to_tensor(lab, tf.float32), axis=-1)
    fy = (lightness + 16.0) / 116.0
    f = tf.stack([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    xyz = tf.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0))
    linear = tf.clip_by_value(_matmul_last(xyz, _XYZ_TO_RGB * _WHITE_D65[None, :]), 0.0, 1.0)
    return tf.where(linear <= 0.0031308, 12.92 * linear, 1.055 * tf.pow(tf.maximum(linear, 0.0031308), 1 / 2.4) - 0.055)


def rgb_to_model(rgb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """RGB in [-1, 1] [..., 3] -> (L [..., 1], ab [..., 2]), both scaled to [-1, 1] for the networks."""
    lab = rgb_to_lab((tf.cast(rgb, tf.float32) + 1.0) / 2.0)
    return lab[..., :1] / L_SCALE - 1.0, lab[..., 1:] / AB_SCALE


def model_to_rgb(lightness: tf.Tensor, ab: tf.Tensor) -> tf.Tensor:
    """(L [..., 1], ab [..., 2]) in the networks' [-1, 1] scaling -> RGB in [-1, 1] [..., 3]."""
    lab = tf.concat([(tf.cast(lightness, tf.float32) + 1.0) * L_SCALE, tf.cast(ab, tf.float32) * AB_SCALE], axis=-1)
    return lab_to_rgb(lab) * 2.0 - 1.0


def colorize(
    images: tf.Tensor,
    predict_ab: Callable,
    size: tuple[int, int],
    resize_mode: str = "squash",
    multiple: int = 1,
    max_pixels: int = MAX_PIXELS,
) -> tf.Tensor:
    """uint8 images [N, h, w, C] of any size (gray or colour) -> colorized uint8 RGB [N, h, w, 3].

    L is taken from the input at its own resolution; only ab comes from the network, so the output
    keeps every detail of the input's lightness.

    Args:
        images: uint8 [N, h, w, C], C = 1, 2, 3 or 4.
        predict_ab: the network, L [N, H, W, 1] -> ab [N, H, W, 2] in [-1, 1] (Keras or a TFLite runner).
        size: the network's (H, W).
        resize_mode: "squash" runs the network at `size` (L resized there, ab resized back); "own" at the
            image's size, reflect-padded to a multiple of `multiple` (the network must take any size).
        multiple: 2^depth of the network, for "own".
        max_pixels: "own" refuses images whose padded pixel count is larger.
    """
    lightness, _ = rgb_to_model(to_float(as_rgb(images)))  # [N, h, w, 1]
    if resize_mode == "own":
        ab = translate_own_size(predict_ab, lightness, multiple, max_pixels)  # [N, h, w, 2]
    else:
        ab = predict_ab(tf.image.resize(lightness, size, antialias=True))  # [N, H, W, 2]
        ab = tf.image.resize(ab, tf.shape(images)[1:3])  # [N, h, w, 2]
    return to_uint8(model_to_rgb(lightness, ab))


def decode_photo(path: tf.Tensor) -> tf.Tensor:
    """Any JPEG/PNG -> uint8 RGB [h, w, 3] (grayscale and RGBA files included)."""
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def train_example(path: tf.Tensor, seed: tf.Tensor, image_size: tuple[int, int]) -> tuple[tf.Tensor, tf.Tensor]:
    """One photo -> jittered (L, ab): the crop and mirror act on the photo, before the Lab split."""
    photo = jitter_stack(to_float(decode_photo(path)), image_size, seed)  # [H, W, 3]
    return rgb_to_model(photo)


def eval_example(path: tf.Tensor, image_size: tuple[int, int]) -> tuple[tf.Tensor, tf.Tensor]:
    """One photo -> resized (L, ab)."""
    return rgb_to_model(tf.image.resize(to_float(decode_photo(path)), image_size))


def walk_photos(folder: str) -> list[str]:
    """Every JPEG/PNG under `folder`, recursively (photo collections often nest by album or class), sorted."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")]
    return sorted(found)


def list_photos(data_dir: str, split: str, val_fraction: float) -> list[str]:
    """The photos of `split` ("train" or "val") in a colorization folder.

    With `data_dir/train/` and `data_dir/val/` the split is given. Otherwise every photo under
    `data_dir` (or under `train/` when there is no `val/`) is shared out: a fixed permutation
    (independent of --seed, so runs with different seeds validate on the same photos) sends
    `val_fraction` of them, at least one, to val.

    Raises:
        UsageError: the folder is missing, or holds fewer than two photos to split.
    """
    if not os.path.isdir(data_dir):
        raise UsageError(f"{data_dir} does not exist: --data-dir must be a folder of photos (JPEG/PNG)")
    train_dir, val_dir = os.path.join(data_dir, "train"), os.path.join(data_dir, "val")
    if (os.path.isdir(train_dir) and os.path.isdir(val_dir)) or split not in ("train", "val"):
        photos = walk_photos(os.path.join(data_dir, split))  # a further split (test/) is always a folder
        if not photos:
            raise UsageError(f"no photos found in {os.path.join(data_dir, split)}: expected {'/'.join(IMAGE_EXTENSIONS)} files")
        return photos
    pool = walk_photos(train_dir if os.path.isdir(train_dir) else data_dir)
    if len(pool) < 2:
        raise UsageError(f"{data_dir} holds {len(pool)} photo(s): colorization needs at least 2 (some are held out for val)")
    order = np.random.default_rng(0).permutation(len(pool))
    num_val = min(len(pool) - 1, max(1, int(round(val_fraction * len(pool)))))
    chosen = order[:num_val] if split == "val" else order[num_val:]
    return [pool[i] for i in sorted(chosen)]


def _photos_in(folder: str) -> list[str]:
    """walk_photos for export's --eval-dir / --calibration-dir, which must hold some."""
    photos = walk_photos(folder)
    if not photos:
        raise UsageError(f"no photos found under {folder}: pass --eval-dir / --calibration-dir with JPEG/PNG photos")
    return photos


def colorization_to_rgb(x: tf.Tensor, y: tf.Tensor | None = None) -> tf.Tensor:
    """L (x) with ab (y) as RGB in [-1, 1]; without y, the L channel alone (a = b = 0: gray)."""
    ab = tf.zeros_like(tf.concat([x, x], axis=-1)) if y is None else y
    return model_to_rgb(x, ab)


@dataclasses.dataclass(frozen=True)
class ColorizationTask:
    """Any folder of photos, CIE L -> ab. `image_size` and `val_fraction` matter for reading training data only."""

    image_size: tuple[int, int] = (256, 256)
    val_fraction: float = 0.1
    name: str = "colorization"
    input_channels: int = 1
    output_channels: int = 2
    reads_pairs: bool = False
    synthetic_folder: str = "synthetic_photos"

    @property
    def train_example(self) -> Callable:
        return functools.partial(train_example, image_size=self.image_size)

    @property
    def eval_example(self) -> Callable:
        return functools.partial(eval_example, image_size=self.image_size)

    def list_files(self, data_dir: str, split: str) -> list[str]:
        return list_photos(data_dir, split, self.val_fraction)

    def write_synthetic(self, root: str, count: int, size: int, seed: int) -> str:
        return write_synthetic_photos(root, count, size=size, seed=seed)

    def split_folder(self, data_dir: str, split: str) -> str:
        """A photo folder's train/ or val/ when it has them, else the folder itself (any photos do)."""
        return os.path.join(data_dir, split) if os.path.isdir(os.path.join(data_dir, split)) else data_dir

    def read_inputs(self, folder: str, direction: str, size: tuple[int, int], count: int) -> np.ndarray:
        """The L channels of the first `count` photos under `folder` (`direction` does not apply to photos).

        Raises:
            UsageError: no photos there.
        """
        return np.stack([eval_example(tf.constant(path), size)[0].numpy() for path in _photos_in(folder)[:count]])

    def input_size(self, folder: str, direction: str) -> tuple[int, int]:
        """(height, width) of the first photo under `folder`, as stored (`direction` does not apply to photos).

        Raises:
            UsageError: no photos there.
        """
        return tuple(int(side) for side in decode_photo(tf.constant(_photos_in(folder)[0])).shape[:2])

    def to_rgb(self, x: tf.Tensor, y: tf.Tensor | None = None) -> tf.Tensor:
        return colorization_to_rgb(x, y)

    def translate(self, run: Callable, images: tf.Tensor, size: tuple[int, int], resize_mode: str = "squash",
                  multiple: int = 1, max_pixels: int = MAX_PIXELS) -> tf.Tensor:
        return colorize(images, run, size, resize_mode, multiple, max_pixels)

    def serving_functions(
        self, net: Callable, size: tuple[int, int], resize_mode: str = "own", max_pixels: int = MAX_PIXELS
    ) -> dict:
        """A colorizer's SavedModel endpoints, name -> (function, input signature), same names and keys as the paired task's.

        serving_default: uint8 images [N, h, w, C] (C = 1, 2, 3 or 4; any size) -> {"images": colorized uint8 RGB}.
        translate_encoded: PNG/JPEG/BMP bytes [N] -> {"image_bytes": colorized PNGs}, each at its own size.
        translate_float: the network itself, as in TFLite: L [N, H, W, 1] -> {"images": ab [N, H, W, 2]}, both [-1, 1].

        Args:
            net: the generator for inference (inference.inference_generator: any size, the chosen test mode).
            size: the training size (H, W): "squash" runs the network there, translate_float takes it.
            resize_mode: "own" or "squash", as in colorize.
            max_pixels: the cap on an image's pixels (own size: padded), checked before anything is allocated
                for it (an encoded image: from its header, before decoding).
        """
        multiple = size_multiple(net)
        cap_multiple = multiple if resize_mode == "own" else 1  # own size pads each side to the multiple

        def predict_ab(lightness):
            return net(lightness, training=False)

        def translate_images(images):
            images = checked_image_batch(images)
            shape = tf.shape(images)
            images = within_cap(images, shape[1], shape[2], max_pixels, cap_multiple)
            return {"images": colorize(images, predict_ab, size, resize_mode, multiple, max_pixels)}

        def translate_encoded(image_bytes):
            def one(data):  # images differ in size, so one at a time
                image = decode_within_cap(data, max_pixels, cap_multiple)
                return tf.io.encode_png(colorize(image[tf.newaxis], predict_ab, size, resize_mode, multiple, max_pixels)[0])

            # parallel_iterations=1: one full-size image at a time, so a request's peak is one image's, whatever
            # its length.
            string = tf.TensorSpec((), tf.string)
            encoded = tf.map_fn(one, image_bytes, parallel_iterations=1, fn_output_signature=string)
            return {"image_bytes": encoded}

        def translate_float(images):
            return {"images": predict_ab(tf.ensure_shape(images, (None, *size, 1)))}

        return {
            "serving_default": (translate_images, [tf.TensorSpec((None, None, None, None), tf.uint8, name="images")]),
            "translate_encoded": (translate_encoded, [tf.TensorSpec((None,), tf.string, name="image_bytes")]),
            "translate_float": (translate_float, [tf.TensorSpec((None, *size, 1), tf.float32, name="images")]),
        }
