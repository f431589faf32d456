"""The Cityscapes colour palette: colour-coded label images <-> the 19 evaluation class ids (255 = void), and
snapping a noisy (JPEG) label map back onto the palette's colours."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# The 19 classes Cityscapes benchmarks score (trainId 0..18), with their label-image colours
# (cityscapesScripts' labels.py); the pix2pix paper's FCN-score uses the same set.
CLASSES = (
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)),
    ("pole", (153, 153, 153)),
    ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)),
    ("person", (220, 20, 60)),
    ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)),
    ("bus", (0, 60, 100)),
    ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
)
NUM_CLASSES = len(CLASSES)
CLASS_NAMES = tuple(name for name, _ in CLASSES)
IGNORE = 255  # void pixels: scored by nobody, ignored by the segmenter's loss
# Colours of the labels Cityscapes leaves unscored (unlabeled/ego vehicle/static, dynamic, ground,
# parking, rail track, guard rail, bridge, tunnel, caravan, trailer). Listing them keeps a void pixel
# from being snapped to the nearest scored class. (polegroup and license plate share pole's and car's
# colours; they resolve to those classes, as a colour image cannot tell them apart.)
VOID_COLOURS = (
    (0, 0, 0), (111, 74, 0), (81, 0, 81), (250, 170, 160), (230, 150, 140),
    (180, 165, 180), (150, 100, 100), (150, 120, 90), (0, 0, 90), (0, 0, 110),
)  # fmt: skip

# Every colour a Cityscapes label map holds: the scored classes', then the unscored labels'.
LABEL_COLOURS = np.array([colour for _, colour in CLASSES] + list(VOID_COLOURS), np.uint8)  # [29, 3]
_COLOURS = LABEL_COLOURS.astype(np.float32)
_IDS = np.array(list(range(NUM_CLASSES)) + [IGNORE] * len(VOID_COLOURS), np.int32)


def _nearest_colour(label_image: tf.Tensor) -> tf.Tensor:
    """Index into LABEL_COLOURS of each pixel's nearest colour (squared RGB distance), int32 [..., H, W]."""
    pixels = tf.cast(label_image, tf.float32)[..., None, :]  # [..., H, W, 1, 3]
    distances = tf.reduce_sum(tf.square(pixels - _COLOURS), axis=-1)  # [..., H, W, 29]
    return tf.argmin(distances, axis=-1, output_type=tf.int32)


def colours_to_ids(label_image: tf.Tensor) -> tf.Tensor:
    """Maps a colour label image to class ids by the nearest palette colour (robust to JPEG noise).

    Args:
        label_image: uint8 or float [..., H, W, 3] in [0, 255].

    Returns:
        int32 [..., H, W]: 0..18 for the scored classes, 255 for void colours.
    """
    return tf.gather(_IDS, _nearest_colour(label_image))


def snap_to_palette(label: np.ndarray) -> np.ndarray:
    """Replaces every pixel by the nearest Cityscapes label colour: uint8 [H, W, 3] -> uint8 [H, W, 3].

    The Cityscapes pairs are JPEGs, so their label maps carry compression noise; snapped, the demo page's
    exact-colour fill works on them. Unscored labels keep their own colours (not black), as in training.
    """
    return LABEL_COLOURS[_nearest_colour(label).numpy()]


def label_map_png(label: tf.Tensor, side: int) -> bytes:
    """A label map as a `side`-square PNG: resized by nearest neighbour (no blended class colours), then snapped."""
    label = tf.image.resize(label, (side, side), method="nearest")
    return tf.io.encode_png(snap_to_palette(label.numpy())).numpy()


def palette_fraction(image: tf.Tensor, tolerance: float = 20.0) -> float:
    """Share of pixels within `tolerance` (RGB distance) of a palette colour: ~0.8-0.9 for Cityscapes label maps, ~0.1 for photos."""
    pixels = tf.cast(image, tf.float32)[..., None, :]
    nearest = tf.reduce_min(tf.reduce_sum(tf.square(pixels - _COLOURS), axis=-1), axis=-1)
    return float(tf.reduce_mean(tf.cast(nearest <= tolerance**2, tf.float32)))


def ids_to_colours(ids: np.ndarray) -> np.ndarray:
    """Class ids [..., H, W] -> uint8 colour image [..., H, W, 3]; void (255) is black."""
    lookup = np.zeros((256, 3), np.uint8)
    lookup[:NUM_CLASSES] = [colour for _, colour in CLASSES]
    return lookup[np.asarray(ids)]
