"""Scores a trained generator on a split: L1 / PSNR / SSIM, optionally the FCN-score, an HTML report and metrics.json."""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import tensorflow as tf

from ..config import expand_path_fields, option
from ..data.pairs import load_pair, make_eval_dataset, to_uint8
from ..data.palette import NUM_CLASSES, ids_to_colours, palette_fraction
from ..data.sources import run_data_dir
from ..errors import UsageError
from ..files import write_json
from ..inference import TEST_MODES, inference_generator
from ..logs import setup_logging
from ..precision import resolve_precision
from ..run import Restored
from ..tasks import make_task
from .metrics import IMAGE_METRIC_NAMES, SEGMENTATION_METRIC_NAMES, confusion_matrix, image_metrics, segmentation_scores
from .report import write_report
from .segmenter import Segmenter, label_ids, load_segmenter, predict_ids

logger = logging.getLogger("pix2pix_tf")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """An evaluation; `evaluate.py`'s flags come from these fields."""

    checkpoint_dir: str = option("outputs", "a train.py --output-dir (holding config.json and checkpoints/), its checkpoints/ (latest), or one checkpoint there (RUN/checkpoints/ckpt-925)", path="home")
    pretrained: str = option("", "a generator shipped with pix2pix_tf, by name (cityscapes), instead of --checkpoint-dir; its data is fetched when --data-dir is not given")
    data_dir: str = option("", "pix2pix-layout folder to evaluate on; default: the run's own data", path="home")
    split: str = option("val", "split folder of the data to score (train, val, test, ...)")
    batch_size: int = option(8, "images per generator call")
    max_images: int = option(0, "score only the first N images of the split (in file order); 0 = all")
    report_images: int = option(20, "input | generated | target rows shown in the HTML report")
    report_dir: str = option("", "where index.html, images/ and metrics.json go; default: CHECKPOINT_DIR/report (--pretrained NAME: outputs/pretrained-NAME/report)", path="home")
    fcn_score: str = option("", "add the FCN-score with this segmenter: pretrained:NAME (a judge shipped with pix2pix_tf, e.g. pretrained:cityscapes), a SavedModel judge (photos [-1, 1] -> 19 class logits) or a python -m pix2pix_tf.segmenter train --output-dir", path="home")
    test_mode: str = option("eval", "eval: training=False (moving BN statistics, no dropout); paper: the paper's test time, dropout on and each image normalized by its own statistics (masks seeded by the run's --seed)", TEST_MODES)

    def __post_init__(self) -> None:
        expand_path_fields(self)
        if self.batch_size < 1 or self.max_images < 0 or self.report_images < 0:
            raise UsageError("need --batch-size >= 1, --max-images >= 0 and --report-images >= 0")
        if self.test_mode not in TEST_MODES:
            raise UsageError(f"--test-mode {self.test_mode!r}: choose one of {', '.join(TEST_MODES)}")


def _data_dir(config: EvalConfig, run: Restored) -> str:
    """--data-dir, else the folder the run trained on (a public dataset is fetched again if it was deleted)."""
    return config.data_dir or run_data_dir(run.config, make_task(run.config), run.run_dir, fetch=True)


def _label_dataset(files: list[str], run: Restored, size: tuple[int, int], batch_size: int) -> tf.data.Dataset:
    """Ground-truth class ids of the generator's inputs (the label maps), at the segmenter's size.

    Raises:
        UsageError: the inputs are not Cityscapes colour label maps (a photo -> label run, say).
    """
    first_input = load_pair(tf.constant(files[0]), run.config.direction)[0]
    if palette_fraction(first_input) < 0.5:
        raise UsageError(f"--fcn-score needs a label map -> photo run, but the inputs ({run.config.direction} of "
                         f"{files[0]}) are not Cityscapes colour label maps")

    def load_ids(path):
        return label_ids(load_pair(path, run.config.direction)[0], size)

    return tf.data.Dataset.from_tensor_slices(files).map(load_ids).batch(batch_size)


def _score_split(
    run: Restored,
    ds: tf.data.Dataset,
    files: list[str],
    segmenter: Segmenter | None,
    report_images: int,
    test_mode: str,
):
    """One pass of G over the split: per-image l1/psnr/ssim, the segmenter's confusion matrices, report rows."""
    # The data is at the training size, so the generator keeps its fixed input; paper masks follow the run's seed.
    generator = inference_generator(run.generator, test_mode, any_size=False, seed=run.config.seed)
    per_image: dict[str, list[float]] = {name: [] for name in IMAGE_METRIC_NAMES}
    confusion = {kind: np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64) for kind in ("generated", "real")}
    rows: list[dict] = []
    to_rgb = make_task(run.config).to_rgb
    for batch in ds:
        (x, y), ids = batch if segmenter is not None else (batch, None)
        fake = generator(x, training=False)
        # Scored and shown as RGB pictures: for colorization, L with the predicted / true ab.
        fake, y, shown_x = to_rgb(x, fake), to_rgb(x, y), to_rgb(x)
        scores = {name: values.numpy() for name, values in image_metrics(fake, y).items()}
        first = len(per_image["l1"])  # index of this batch's first file
        for name in IMAGE_METRIC_NAMES:
            per_image[name].extend(scores[name].tolist())
        columns = {"input": to_uint8(shown_x).numpy(), "generated": to_uint8(fake).numpy(), "target": to_uint8(y).numpy()}
        if segmenter is not None:
            for kind, photos in (("generated", fake), ("real", y)):
                predicted = predict_ids(segmenter, photos)
                confusion[kind] += confusion_matrix(ids, predicted, NUM_CLASSES).numpy()
                columns[f"segmented {kind}"] = ids_to_colours(predicted.numpy())
        for i in range(min(len(x), report_images - len(rows))):
            path = files[first + i]  # a side-by-side file, or the (A, B) files of the A/ B/ layout
            rows.append({"name": os.path.basename(path if isinstance(path, str) else path[0]), "images": {k: v[i] for k, v in columns.items()},
                         "metrics": {name: scores[name][i] for name in IMAGE_METRIC_NAMES}})
    return per_image, confusion, rows


def _resize_note(image_size: tuple[int, int], segmenter_size: tuple[int, int]) -> str:
    """How photos reach the segmenter: the real ones take the generator's path too, so the ratio compares like with like."""
    if tuple(image_size) == tuple(segmenter_size):
        return f"none: generated and real photos scored at {image_size[0]}x{image_size[1]}"
    return (f"generated photos {image_size[0]}x{image_size[1]} -> {segmenter_size[0]}x{segmenter_size[1]} (bilinear); "
            f"real photos through the same path (source -> {image_size[0]}x{image_size[1]} -> "
            f"{segmenter_size[0]}x{segmenter_size[1]}); labels read at {segmenter_size[0]}x{segmenter_size[1]} (nearest)")


def evaluate(config: EvalConfig) -> dict:
    """Scores the latest checkpoint of a run on a split and writes REPORT_DIR/index.html and metrics.json.

    Returns:
        The contents of metrics.json: means of `l1, psnr, ssim` over the split, and with a segmenter
        `fcn_score` = {generated, real, ratio} of `pixel_acc, class_acc, class_iou`.
    """
    setup_logging("")
    # G computes as it did in training on this machine (--precision auto resolved), so the scores match its validation.
    from ..pretrained import load_any

    run = load_any(config.pretrained, config.checkpoint_dir, precision=resolve_precision)
    data_dir = _data_dir(config, run)
    task = make_task(run.config)
    files = task.list_files(data_dir, config.split)[: config.max_images or None]
    segmenter = load_segmenter(config.fcn_score) if config.fcn_score else None
    logger.info("evaluating %s (epoch %d, --test-mode %s) on %d %s images of %s",
                run.checkpoint, run.epoch, config.test_mode, len(files), config.split, data_dir)
    ds = make_eval_dataset(files, run.config, batch_size=config.batch_size, example_fn=task.eval_example)
    if segmenter is not None:
        ds = tf.data.Dataset.zip(ds, _label_dataset(files, run, segmenter.size, config.batch_size))
    per_image, confusion, rows = _score_split(run, ds, files, segmenter, config.report_images, config.test_mode)

    results = {
        "checkpoint": run.checkpoint, "epoch": run.epoch, "data_dir": data_dir, "split": config.split,
        "num_images": len(files), "image_size": list(run.config.image_size), "direction": run.config.direction,
        "test_mode": config.test_mode,
        **{name: float(np.mean(values)) for name, values in per_image.items()},
    }  # fmt: skip
    if segmenter is not None:
        generated, real = segmentation_scores(confusion["generated"]), segmentation_scores(confusion["real"])
        ratio = {k: generated[k] / real[k] if real[k] else float("nan") for k in SEGMENTATION_METRIC_NAMES}
        results["fcn_score"] = {"segmenter": segmenter.source, "resize": _resize_note(run.config.image_size, segmenter.size),
                                "generated": generated, "real": real, "ratio": ratio}
    own_dir = os.path.join("outputs", f"pretrained-{run.pretrained}") if run.pretrained else run.run_dir
    report_dir = config.report_dir or os.path.join(own_dir, "report")
    write_json(os.path.join(report_dir, "metrics.json"), results)
    write_report(report_dir, results, rows, plots_dir=os.path.join(run.run_dir, "plots"))
    logger.info("%s", " ".join(f"{name}={results[name]:.4g}" for name in IMAGE_METRIC_NAMES))
    if segmenter is not None:
        logger.info("FCN-score photos: %s", results["fcn_score"]["resize"])
        for kind in ("generated", "real", "ratio"):
            logger.info("FCN-score %s: %s", kind, " ".join(f"{k}={v:.3f}" for k, v in results["fcn_score"][kind].items()))
    logger.info("report: %s", os.path.join(report_dir, "index.html"))
    return results
