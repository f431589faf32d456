"""A procedural paired dataset (label layout | textured "photo") for offline quick starts and test fixtures."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from .palette import CLASSES as PALETTE_CLASSES

# A base colour for the "photo" side of each class drawn; the label side takes the class's Cityscapes colour.
PHOTO_COLOURS = {
    "sky": (150, 190, 235),
    "building": (120, 105, 95),
    "vegetation": (60, 110, 40),
    "road": (90, 90, 95),
    "sidewalk": (170, 165, 155),
    "car": (30, 40, 120),
}
# name -> (label colour, photo colour)
CLASSES = {name: (dict(PALETTE_CLASSES)[name], photo) for name, photo in PHOTO_COLOURS.items()}


def draw_pair(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One (photo, label) pair of uint8 [size, size, 3] images from the same random layout."""
    ids = np.zeros((size, size), np.int64)
    names = list(CLASSES)
    horizon = int(rng.uniform(0.3, 0.55) * size)
    ids[horizon:] = names.index("road")
    curb = int(rng.uniform(0.05, 0.2) * size)
    ids[horizon : horizon + curb] = names.index("sidewalk")
    for _ in range(rng.integers(1, 4)):  # buildings standing on the horizon
        left, width = rng.integers(0, size), rng.integers(size // 8, size // 2)
        top = rng.integers(size // 10, horizon)
        ids[top:horizon, left : left + width] = names.index("building")
    for _ in range(rng.integers(0, 3)):  # round trees
        cy, cx, r = rng.integers(horizon // 2, horizon + 1), rng.integers(0, size), rng.integers(size // 16, size // 6)
        yy, xx = np.ogrid[:size, :size]
        ids[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = names.index("vegetation")
    for _ in range(rng.integers(0, 3)):  # cars on the road
        top = rng.integers(horizon + curb, size - size // 10)
        left, width = rng.integers(0, size), rng.integers(size // 8, size // 4)
        ids[top : top + size // 10, left : left + width] = names.index("car")
    label_colours = np.array([CLASSES[n][0] for n in names], np.float32)
    photo_colours = np.array([CLASSES[n][1] for n in names], np.float32)
    label = label_colours[ids]
    shade = np.linspace(1.15, 0.85, size, dtype=np.float32)[:, None, None]  # light falls off downwards
    photo = photo_colours[ids] * shade + rng.normal(0, 12, (size, size, 3))  # texture
    return np.clip(photo, 0, 255).astype(np.uint8), label.astype(np.uint8)


def write_synthetic_dataset(root: str, train: int = 200, val: int | None = None, size: int = 64, seed: int = 0) -> str:
    """Writes `root/train` and `root/val` as side-by-side JPEGs (LEFT photo, RIGHT label), like Cityscapes.

    Deterministic in `seed`; existing files with the same names are rewritten identically.

    Returns:
        `root`, ready for --data-dir.
    """
    val = max(4, train // 10) if val is None else val
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        for i in range(count):
            photo, label = draw_pair(rng, size)
            data = tf.io.encode_jpeg(np.concatenate([photo, label], axis=1), quality=95)
            tf.io.write_file(os.path.join(root, split, f"{i + 1:05d}.jpg"), data)
    return root


def write_synthetic_photos(root: str, count: int = 200, size: int = 64, seed: int = 0) -> str:
    """Writes `count` procedural street "photos" as JPEGs into `root` (one flat folder), for offline runs and tests."""
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        photo, _ = draw_pair(rng, size)  # the photo half of a synthetic pair
        tf.io.write_file(os.path.join(root, f"{i + 1:05d}.jpg"), tf.io.encode_jpeg(photo, quality=95))
    return root
