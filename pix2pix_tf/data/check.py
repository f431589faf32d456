"""The pre-flight scan: every file of a split is decoded once at start-up, so a bad one costs seconds, not a run."""

from __future__ import annotations

import logging
import time

import tensorflow as tf

from ..errors import UsageError

logger = logging.getLogger("pix2pix_tf")

ASPECT_TOLERANCE = 0.05  # relative; pairs saved at odd widths (513 px) still pass
LISTED_IN_ERROR = 10  # files named in a --on-bad-image fail message; the rest are counted


def _probe(path: tf.Tensor):
    # The same decode as pairs.load_pair (channels=3 converts grayscale and RGBA), so a file that
    # passes here cannot fail in the training pipeline.
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return path, tf.shape(image)[:2]


def decoded_shapes(paths: list[str]) -> dict[str, tuple[int, int]]:
    """(height, width) of each file that decodes; files missing from the result could not be read or decoded."""
    ds = tf.data.Dataset.from_tensor_slices(paths).map(_probe, num_parallel_calls=tf.data.AUTOTUNE)
    # ignore_errors drops the elements whose decode failed; the set difference names them.
    return {path.decode(): (int(h), int(w)) for path, (h, w) in ds.ignore_errors().as_numpy_iterator()}


def _name(item: str | tuple[str, str]) -> str:
    return item if isinstance(item, str) else " + ".join(item)


def _aspect_problem(shape: tuple[int, int], expected: float, image_size: tuple[int, int], what: str) -> str:
    height, width = shape
    if abs(width / height - expected) <= ASPECT_TOLERANCE * expected:
        return ""
    return (
        f"is {width}x{height} (WxH): not {what} for --image-size {image_size[0]}x{image_size[1]}, "
        f"which needs width {expected:g}x height"
    )


def find_bad_images(items: list, image_size: tuple[int, int], pairs: bool = True) -> dict:
    """Maps each unusable pair to the reason, for pairs trained at `image_size`.

    `items` is what pairs.list_images returns: side-by-side files, or (A, B) file pairs. A pair is
    unusable when a file cannot be read or decoded (corrupt, truncated, not an image), when a
    side-by-side file does not have the aspect ratio of two `image_size` images side by side (a
    single photo, a wrongly stacked pair), or when A and B differ in size. With `pairs=False`
    (colorization photos, resized to any shape) only decoding is checked.
    """
    side_by_side = all(isinstance(item, str) for item in items)
    shapes = decoded_shapes(list(items) if side_by_side else [path for pair in items for path in pair])
    single = image_size[1] / image_size[0]
    bad = {}
    for item in items:
        paths = [item] if side_by_side else list(item)
        unreadable = [path for path in paths if path not in shapes]
        if unreadable:
            bad[item] = f"cannot be read or decoded (corrupt, truncated or not a JPEG/PNG): {', '.join(unreadable)}"
        elif not pairs:
            continue
        elif side_by_side:
            bad[item] = _aspect_problem(shapes[item], 2 * single, image_size, "a side-by-side pair")
        elif shapes[item[0]] != shapes[item[1]]:
            bad[item] = f"differ in size: A is {shapes[item[0]]}, B is {shapes[item[1]]} (HxW)"
        else:
            bad[item] = _aspect_problem(shapes[item[0]], single, image_size, "an image of the training shape")
    return {item: reason for item, reason in bad.items() if reason}


def check_split(files, image_size: tuple[int, int], on_bad: str, split: str, pairs: bool = True):
    """The pre-flight scan of one split: returns the usable pairs.

    Args:
        files: the split as pairs.list_images returns it; a tf.data.Dataset (the TFDS source, whose
            builder decoded every pair while preparing it) is returned as it is.
        image_size: the training (height, width).
        on_bad: "skip" drops bad files with a warning naming each; "fail" raises.
        split: "train" or "val", for the messages.
        pairs: False for single photos (colorization): only decoding is checked.

    Raises:
        UsageError: `on_bad` is "fail" and a file is bad, or no usable file is left.
    """
    if isinstance(files, tf.data.Dataset):
        return files
    start = time.perf_counter()
    bad = find_bad_images(files, image_size, pairs)
    good = [path for path in files if path not in bad]
    seconds = time.perf_counter() - start
    if not bad:
        logger.info("pre-flight scan: %d %s files OK (%.1f s)", len(files), split, seconds)
        return good
    lines = [f"{_name(item)} {reason}" for item, reason in bad.items()]
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
