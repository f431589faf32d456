"""Label maps for the demo: the page's class palette, snapping JPEG noise away, example maps from pair files."""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow as tf

from .pairs import list_images, load_pair
from .palette import CLASSES, VOID_COLOURS

# The 19 Cityscapes evaluation classes in their official colours, then black (unlabelled) as the eraser.
PALETTE = (*CLASSES, ("void", (0, 0, 0)))
# Every colour a Cityscapes label map holds: the scored classes' and the unscored labels' (ground, parking, ...).
_LABEL_COLOURS = np.array([colour for _, colour in CLASSES] + list(VOID_COLOURS), np.int32)  # [29, 3]


def snap_to_palette(label: np.ndarray) -> np.ndarray:
    """Replaces every pixel by the nearest Cityscapes label colour.

    The Cityscapes pairs are JPEGs, so their label maps carry compression noise; snapped, the page's
    exact-colour fill works on them. Unscored labels keep their own colours (not black), as in training.
    """
    distance = ((label[..., None, :].astype(np.int32) - _LABEL_COLOURS) ** 2).sum(-1)  # [H, W, 29]
    return _LABEL_COLOURS[distance.argmin(-1)].astype(np.uint8)  # [H, W, 3]


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
