"""Cityscapes label maps for the demo: the class palette, snapping JPEG noise onto it, example maps from pair files."""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow as tf

from .data import list_images, load_pair

# The 19 Cityscapes evaluation classes with their official colours (cityscapesScripts labels.py),
# then "void", the black of unlabelled pixels, used as the eraser.
PALETTE = (
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
    ("void", (0, 0, 0)),
)


def snap_to_palette(label: np.ndarray, max_distance: float = 60.0) -> np.ndarray:
    """Replaces colours within `max_distance` (RGB) of a palette colour by that colour.

    The Cityscapes pairs are JPEGs, so their label maps carry compression noise; snapped, the
    page's exact-colour fill works on them. Colours of classes outside the palette stay as they are.
    """
    colours = np.array([rgb for _, rgb in PALETTE], np.int32)  # [K, 3]
    distance = ((label[..., None, :].astype(np.int32) - colours) ** 2).sum(-1)  # [H, W, K]
    nearest = distance.argmin(-1)
    close = distance.min(-1) <= max_distance**2
    return np.where(close[..., None], colours[nearest], label).astype(np.uint8)


class Examples:
    """Label maps from pix2pix pair files (the RIGHT half under direction BtoA), as `side`-square PNGs."""

    def __init__(self, folder: str, direction: str = "BtoA", side: int = 256):
        """`folder` is a dataset root (its val/ split is used) or a folder of pair files itself."""
        folder = os.path.normpath(folder)
        root, split = (folder, "val") if os.path.isdir(os.path.join(folder, "val")) else os.path.split(folder)
        self.files = list_images(root, split)
        self.direction = direction
        self.side = side
        self.png = functools.lru_cache(maxsize=64)(self._png)  # per instance: the cache dies with it

    def __len__(self) -> int:
        return len(self.files)

    def _png(self, index: int) -> bytes:
        """Example `index` as PNG bytes: the label half, resized (nearest) and snapped to the palette."""
        label, _ = load_pair(tf.constant(self.files[index]), self.direction)
        label = tf.image.resize(label, (self.side, self.side), method="nearest")  # no blended class colours
        return tf.io.encode_png(snap_to_palette(label.numpy())).numpy()
