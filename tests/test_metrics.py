"""Image metrics on known images, FCN-score arithmetic, and the Cityscapes palette mapping."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf.data.pairs import to_float
from pix2pix_tf.data.palette import CLASSES, IGNORE, NUM_CLASSES, VOID_COLOURS, colours_to_ids, ids_to_colours
from pix2pix_tf.data.synthetic import CLASSES as SYNTHETIC_CLASSES
from pix2pix_tf.data.synthetic import draw_pair, write_synthetic_dataset
from pix2pix_tf.evaluate.metrics import confusion_matrix, image_metrics, segmentation_scores


def _images(seed=0, shape=(2, 32, 32, 3), low=20, high=200):
    return np.random.default_rng(seed).integers(low, high, shape).astype(np.uint8)


def test_identical_images_score_perfectly():
    target = to_float(_images())
    scores = image_metrics(target, target)
    np.testing.assert_array_equal(scores["l1"], [0.0, 0.0])
    assert np.all(np.isinf(scores["psnr"].numpy()))
    np.testing.assert_allclose(scores["ssim"], [1.0, 1.0], atol=1e-6)


def test_a_constant_error_of_10_gives_l1_10_and_its_psnr():
    target = _images()
    scores = image_metrics(to_float(target + 10), to_float(target))  # no clipping: values stay <= 210
    np.testing.assert_allclose(scores["l1"], [10.0, 10.0], atol=1e-4)
    expected = 10 * math.log10(255**2 / 10**2)  # MSE = 100 -> 28.13 dB
    np.testing.assert_allclose(scores["psnr"], [expected, expected], atol=1e-3)
    assert np.all(scores["ssim"].numpy() < 1.0)


@pytest.mark.parametrize("sigma", [4.0, 16.0])
def test_gaussian_noise_gives_the_expected_psnr(sigma):
    # 128x128x3 samples per image: the MSE estimate is within ~1% (0.04 dB), well inside the tolerance.
    target = _images(shape=(4, 128, 128, 3), low=60, high=190)
    noise = np.random.default_rng(1).normal(0, sigma, target.shape)
    noisy = np.clip(np.round(target + noise), 0, 255).astype(np.uint8)  # 60..190 +- 4 sigma: no clipping
    scores = image_metrics(to_float(noisy), to_float(target))
    expected = 20 * math.log10(255 / math.sqrt(sigma**2 + 1 / 12))  # rounding adds 1/12 to the variance
    np.testing.assert_allclose(scores["psnr"], np.full(4, expected), atol=0.1)
    np.testing.assert_allclose(scores["l1"], np.full(4, sigma * math.sqrt(2 / math.pi)), rtol=0.03)  # E|N(0, s)|


def test_ssim_falls_as_noise_grows():
    target = _images(shape=(1, 64, 64, 3))
    rng = np.random.default_rng(2)
    ssims = [float(image_metrics(to_float(np.clip(target + rng.normal(0, s, target.shape), 0, 255)),
                                 to_float(target))["ssim"][0]) for s in (2, 8, 32)]  # fmt: skip
    assert 1.0 > ssims[0] > ssims[1] > ssims[2] > 0.0, ssims


def test_segmentation_scores_on_a_known_confusion_matrix():
    confusion = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])  # class 2 never occurs: excluded from the means
    scores = segmentation_scores(confusion)
    assert scores["pixel_acc"] == pytest.approx(5 / 6)
    assert scores["class_acc"] == pytest.approx((3 / 4 + 2 / 2) / 2)
    assert scores["class_iou"] == pytest.approx((3 / 4 + 2 / 3) / 2)


def test_class_iou_averages_over_the_classes_in_the_labels():
    # Class 1 is only ever predicted: it costs class 0 a pixel, but is no class of its own in the mean.
    scores = segmentation_scores(np.array([[3, 1], [0, 0]]))
    assert scores["class_iou"] == pytest.approx(3 / 4)
    assert scores["class_acc"] == pytest.approx(3 / 4)


def test_confusion_matrix_ignores_void_pixels():
    labels = tf.constant([[0, 1, IGNORE], [1, 1, 0]])
    predictions = tf.constant([[0, 0, 1], [1, 1, 1]])
    np.testing.assert_array_equal(confusion_matrix(labels, predictions, 2), [[1, 1], [1, 2]])


def test_every_palette_colour_maps_to_its_class_and_void_to_ignore():
    colours = np.array([[colour for _, colour in CLASSES] + list(VOID_COLOURS)], np.uint8)  # [1, 29, 3]
    ids = colours_to_ids(colours).numpy()[0]
    np.testing.assert_array_equal(ids[:NUM_CLASSES], np.arange(NUM_CLASSES))
    assert np.all(ids[NUM_CLASSES:] == IGNORE)
    np.testing.assert_array_equal(ids_to_colours(ids[:NUM_CLASSES]), colours[0, :NUM_CLASSES])


def test_jpeg_label_images_map_back_to_their_classes():
    rng = np.random.default_rng(3)
    ids = np.kron(rng.integers(0, NUM_CLASSES, (8, 8)), np.ones((16, 16), np.int64))  # 16x16 blocks, [128, 128]
    labels = ids_to_colours(ids)
    full_chroma = tf.io.decode_jpeg(tf.io.encode_jpeg(labels, quality=90, chroma_downsampling=False))
    np.testing.assert_array_equal(colours_to_ids(full_chroma), ids)
    # Halved chroma (the usual JPEG) blends colours across block edges; every pixel off an edge maps right.
    jpeg = tf.io.decode_jpeg(tf.io.encode_jpeg(labels, quality=90))
    wrong = colours_to_ids(jpeg).numpy() != ids
    from_edge = np.minimum(np.arange(128) % 16, 15 - np.arange(128) % 16)
    assert not wrong[np.minimum.outer(from_edge, from_edge) > 0].any()
    assert wrong.mean() < 0.1


def test_synthetic_label_maps_decode_to_their_layout(tmp_path):
    assert {name for name, _ in CLASSES} >= set(SYNTHETIC_CLASSES)  # the fixture draws Cityscapes classes
    root = write_synthetic_dataset(str(tmp_path), train=3, val=0, size=64, seed=5)
    rng = np.random.default_rng(5)  # replays the writer's draws
    names = [name for name, _ in CLASSES]
    for file in sorted(os.listdir(os.path.join(root, "train"))):
        _, label = draw_pair(rng, 64)
        exact = colours_to_ids(label).numpy()  # lossless colours: every pixel is a palette colour
        assert {names[i] for i in np.unique(exact)} <= set(SYNTHETIC_CLASSES)
        np.testing.assert_array_equal(ids_to_colours(exact), label)
        jpeg = tf.io.decode_jpeg(tf.io.read_file(os.path.join(root, "train", file)))[:, 64:]
        assert np.mean(colours_to_ids(jpeg).numpy() == exact) > 0.95  # the misses are edge pixels (test above)
