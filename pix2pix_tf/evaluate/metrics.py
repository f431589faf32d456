"""Image-quality (L1, PSNR, SSIM) and segmentation (pixel / class accuracy, IoU) metrics as pure functions."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..data.pairs import to_uint8

IMAGE_METRIC_NAMES = ("l1", "psnr", "ssim")
SEGMENTATION_METRIC_NAMES = ("pixel_acc", "class_acc", "class_iou")


def image_metrics(generated: tf.Tensor, target: tf.Tensor) -> dict[str, tf.Tensor]:
    """Per-image L1, PSNR and SSIM of G(x) against y, both in [-1, 1], measured on [0, 255].

    Both images are first rounded to uint8, so the numbers describe the pictures a user saves,
    and PSNR/SSIM use their usual 8-bit scale (`max_val=255`).

    Returns:
        {"l1", "psnr", "ssim"}: float32 [N] each. `l1` is the mean absolute difference in pixel
        values (about 127.5 * g_l1); `psnr` is in dB and +inf for identical images; `ssim` is 1
        for identical images.
    """
    fake = tf.cast(to_uint8(generated), tf.float32)
    real = tf.cast(to_uint8(target), tf.float32)
    return {
        "l1": tf.reduce_mean(tf.abs(fake - real), axis=[1, 2, 3]),
        "psnr": tf.image.psnr(fake, real, max_val=255.0),
        "ssim": tf.image.ssim(fake, real, max_val=255.0),
    }


def confusion_matrix(labels: tf.Tensor, predictions: tf.Tensor, num_classes: int) -> tf.Tensor:
    """[num_classes, num_classes] int64 counts, rows = true class; labels outside [0, num_classes) are ignored."""
    labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
    predictions = tf.reshape(tf.cast(predictions, tf.int64), [-1])
    keep = (labels >= 0) & (labels < num_classes)  # void pixels (255) count for nothing
    return tf.math.confusion_matrix(
        tf.boolean_mask(labels, keep), tf.boolean_mask(predictions, keep), num_classes=num_classes, dtype=tf.int64
    )


def segmentation_scores(confusion: np.ndarray) -> dict[str, float]:
    """The FCN-score numbers of the pix2pix paper (Table 1) from a confusion matrix.

    Per-pixel accuracy over all labelled pixels; per-class accuracy and IoU averaged over the classes
    that occur in the labels, as the Cityscapes FCN judge's reference figures are computed
    (../shared/judges/README.md). A class only predicted still lowers the IoU of the true classes
    it took pixels from.

    Returns:
        {"pixel_acc", "class_acc", "class_iou"} in [0, 1].
    """
    confusion = np.asarray(confusion, np.float64)
    hits, true, predicted = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        class_acc = hits / true
        iou = np.where(true > 0, hits / (true + predicted - hits), np.nan)
    return {
        "pixel_acc": float(hits.sum() / max(confusion.sum(), 1.0)),
        "class_acc": float(np.nanmean(class_acc)) if np.isfinite(class_acc).any() else 0.0,
        "class_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
    }
