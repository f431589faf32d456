"""The pre-flight scan: every file of a split is decoded once at start-up, so a bad one costs seconds, not a run."""

from __future__ import annotations

import logging
import time

import tensorflow as tf

from .config import UsageError

logger = logging.getLogger("pix2pix_tf")

ASPECT_TOLERANCE = 0.05  # relative; pairs saved at odd widths (513 px) still pass
LISTED_IN_ERROR = 10  # files named in a --on-bad-image fail message; the rest are counted


def _probe(path: tf.Tensor):
    # The same decode as data.load_pair (channels=3 converts grayscale and RGBA), so a file that
    # passes here cannot fail in the training pipeline.
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return path, tf.shape(image)[:2]


def decoded_shapes(files: list[str]) -> dict[str, tuple[int, int]]:
    """(height, width) of each file that decodes; files missing from the result could not be read or decoded."""
    ds = tf.data.Dataset.from_tensor_slices(files).map(_probe, num_parallel_calls=tf.data.AUTOTUNE)
    # ignore_errors drops the elements whose decode failed; the set difference names them.
    return {path.decode(): (int(h), int(w)) for path, (h, w) in ds.ignore_errors().as_numpy_iterator()}


def find_bad_images(files: list[str], image_size: tuple[int, int]) -> dict[str, str]:
    """Maps each unusable file to the reason, for side-by-side pairs trained at `image_size`.

    A file is unusable when it cannot be read or decoded (corrupt, truncated, not an image) or its
    aspect ratio is not that of two `image_size` images side by side (width 2x height for square
    training), which is what a single photo or a wrongly stacked pair looks like.
    """
    shapes = decoded_shapes(files)
    expected = 2 * image_size[1] / image_size[0]
    bad = {}
    for path in files:
        if path not in shapes:
            bad[path] = "cannot be read or decoded (corrupt, truncated or not a JPEG/PNG)"
            continue
        height, width = shapes[path]
        if abs(width / height - expected) > ASPECT_TOLERANCE * expected:
            bad[path] = (
                f"is {width}x{height} (WxH): not a side-by-side pair for --image-size "
                f"{image_size[0]}x{image_size[1]}, which needs width {expected:g}x height"
            )
    return bad


def check_split(files: list[str], image_size: tuple[int, int], on_bad: str, split: str) -> list[str]:
    """The pre-flight scan of one split: returns the usable files.

    Args:
        files: the split's image files.
        image_size: the training (height, width).
        on_bad: "skip" drops bad files with a warning naming each; "fail" raises.
        split: "train" or "val", for the messages.

    Raises:
        UsageError: `on_bad` is "fail" and a file is bad, or no usable file is left.
    """
    start = time.perf_counter()
    bad = find_bad_images(files, image_size)
    good = [path for path in files if path not in bad]
    seconds = time.perf_counter() - start
    if not bad:
        logger.info("pre-flight scan: %d %s files OK (%.1f s)", len(files), split, seconds)
        return good
    lines = [f"{path} {reason}" for path, reason in bad.items()]
    if on_bad == "fail" or not good:
        shown = "\n  ".join(lines[:LISTED_IN_ERROR])
        more = f"\n  ... and {len(lines) - LISTED_IN_ERROR} more" if len(lines) > LISTED_IN_ERROR else ""
        fix = "fix or remove them" if good else "no usable file is left in the split; fix the data or --image-size"
        hint = ", or pass --on-bad-image skip" if good else ""
        raise UsageError(f"{len(bad)} of {len(files)} {split} files are unusable ({fix}{hint}):\n  {shown}{more}")
    for line in lines:
        logger.warning("skipping %s", line)
    logger.warning(
        "pre-flight scan: skipped %d of %d %s files (named above) (%.1f s)", len(bad), len(files), split, seconds
    )
    return good
