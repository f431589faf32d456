"""The export run (export.py): every requested format written, then measured into export_report.json (size, latency, fidelity)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import platform
import random
import re
import sys
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from ..config import add_config_flags, config_from_args, expand_path_fields, option, prog_name
from ..data.sources import run_data_dir
from ..errors import UsageError
from ..extras import import_extra
from ..files import atomic_path, write_json
from ..inference import MAX_PIXELS, RESIZE_MODES, TEST_MODES, inference_generator, model_size, scale_mismatch
from ..logs import setup_logging
from ..run import Restored
from ..tasks import Task, task_for
from .litert import LiteRTGenerator
from .onnx import ONNX_FILE, OnnxGenerator, convert_onnx, require_onnx
from .savedmodel import export_metadata, export_saved_model
from .tflite import TFLITE_MODES, TFLiteUnsupportedError, convert_tflite_modes, tflite_name

logger = logging.getLogger("pix2pix_tf")

DEFAULT_FORMATS = ("savedmodel", *TFLITE_MODES)
FORMATS = (*DEFAULT_FORMATS, "onnx")  # onnx is opt-in: it needs the [onnx] extra (tf2onnx, onnxruntime)
PEAK = 2.0  # the generator's output range [-1, 1]: PSNR here equals PSNR of the uint8 images
# --psnr-floor's default: 30 dB against Keras is an RMS difference of 8 of the 255 levels, which shows in a picture.
# The recipe's trained 128x128 model reads 22.7 dB in int8_full and 43.3 dB in int8 (BENCHMARKS.md).
PSNR_FLOOR_DB = 30.0
QUANTIZED = ("tflite_int8", "tflite_int8_full")  # the formats --psnr-floor watches; fp16 is their alternative


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What export.py writes and from which model; its flags are generated from these fields."""

    checkpoint_dir: str = option("outputs/checkpoints", "a train.py --output-dir (holding config.json and checkpoints/), its checkpoints/ (latest), or one checkpoint there (RUN/checkpoints/ckpt-925)", path="home")
    keras_file: str = option("", "a .keras generator file instead of --checkpoint-dir (loaded with safe_mode)", path="home")
    pretrained: str = option("", "a generator shipped with pix2pix_tf, by name (cityscapes), instead of --checkpoint-dir; its example label maps are the default held-out and calibration inputs")
    export_dir: str = option("exports", "base folder: the SavedModel goes to EXPORT_DIR/MODEL_NAME/VERSION, TFLite next to it", path="home")
    model_name: str = option("pix2pix", "TF Serving model name (folder under --export-dir)")
    version: int = option(0, "SavedModel version; 0 = one more than the highest existing")
    overwrite: bool = option(False, "replace an existing version / TFLite / ONNX files instead of refusing")
    formats: str = option(
        ",".join(DEFAULT_FORMATS), f"comma-separated subset of {','.join(FORMATS)} (onnx needs the [onnx] extra)"
    )
    calibration_dir: str = option("", "pair images whose input halves calibrate int8_full; default: the run's train/", path="home")
    calibration_count: int = option(100, "calibration images used for int8_full")
    eval_dir: str = option("", "held-out pair images for the fidelity figures; default: the run's val/", path="home")
    eval_count: int = option(8, "held-out images compared against the Keras generator")
    direction: str = option("", "which half of a pair is the input; default: the run's --direction (BtoA)", ("", "AtoB", "BtoA"))
    latency_runs: int = option(20, "timed one-image calls per format for the latency figures")
    test_mode: str = option("eval", "eval: training=False (moving BN statistics, no dropout); paper: the paper's test time, dropout on and each image normalized by its own statistics (no TFLite)", TEST_MODES)
    resize_mode: str = option("", "what the SavedModel's image signatures do with an image's size: own = translate at it (padded to a multiple of 2^depth); squash = resize to the training size and back; default: squash when the held-out images are 1.5x the training size or more (at their own size such a model repeats texture tiles), else own", ("", *RESIZE_MODES))
    max_pixels: int = option(MAX_PIXELS, "largest image (height x width; own size: padded to 2^depth) the SavedModel's signatures accept, in both resize modes; an encoded image is refused from its header, before decoding")
    psnr_floor: float = option(PSNR_FLOOR_DB, "warn when a quantized TFLite format (int8, int8_full) reads under this PSNR (dB) against the Keras generator; 0 = never")

    def __post_init__(self) -> None:
        expand_path_fields(self)
        unknown = set(self.format_list) - set(FORMATS)
        if unknown or not self.format_list:
            raise UsageError(f"--formats {self.formats!r}: choose from {','.join(FORMATS)}")
        if "onnx" in self.format_list:
            if self.test_mode == "paper":
                raise UsageError("--formats onnx converts the eval-mode generator only: drop onnx from --formats "
                                 "or pass --test-mode eval")
            require_onnx()  # the optional extra: say so before anything is loaded or written
        if not is_safe_model_name(self.model_name):
            raise UsageError(f"--model-name {self.model_name!r} must be a plain folder name (letters, digits, _ . -)")
        if self.test_mode not in TEST_MODES or self.resize_mode not in ("", *RESIZE_MODES):
            raise UsageError(
                f"--test-mode must be one of {', '.join(TEST_MODES)} and --resize-mode one of {', '.join(RESIZE_MODES)}"
            )
        for name in ("version", "calibration_count", "eval_count", "latency_runs", "max_pixels", "psnr_floor"):
            if getattr(self, name) < (0 if name in ("version", "psnr_floor") else 1):
                raise UsageError(f"--{name.replace('_', '-')} is out of range: {getattr(self, name)}")

    @property
    def format_list(self) -> list[str]:
        return [f.strip() for f in self.formats.split(",") if f.strip()]


def max_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def psnr_db(a: np.ndarray, b: np.ndarray) -> float | None:
    """PSNR over the whole batch for [-1, 1] images; None when they are identical (infinite PSNR)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return None if mse == 0 else 10 * np.log10(PEAK**2 / mse)


def mean_latency_ms(fn: Callable[[np.ndarray], object], image: np.ndarray, runs: int, warmup: int = 2) -> float:
    """Mean wall time of `fn` on one [1, H, W, 3] image, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn(image)
    start = time.perf_counter()
    for _ in range(runs):
        fn(image)
    return (time.perf_counter() - start) / max(runs, 1) * 1000


def size_bytes(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def measure(
    runners: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]],
    generator: keras.Model,
    inputs: np.ndarray,
    latency_runs: int,
) -> dict:
    """Report entries for the Keras generator and each `runners` name -> (artifact path, float fn).

    `generator` is the model the formats were made from, in the export's test mode. In paper mode it
    must be a fresh twin seeded like the SavedModel: its first call then draws the same dropout masks
    as the loaded SavedModel's first call, so the comparison measures the export, not the noise.
    """
    reference = generator(inputs, training=False).numpy()
    one = inputs[:1]
    formats = {
        "keras": {
            "params": int(generator.count_params()),
            "latency_ms": mean_latency_ms(lambda x: generator(x, training=False), one, latency_runs),
        }
    }
    for name, (path, fn) in runners.items():
        outputs = np.asarray(fn(inputs))
        if not np.all(np.isfinite(outputs)):
            raise RuntimeError(f"{name} ({path}) produced NaN/inf outputs: the export is broken")
        formats[name] = {
            "path": path,
            "size_bytes": size_bytes(path),
            "latency_ms": mean_latency_ms(fn, one, latency_runs),
            "max_abs_error": max_abs_error(outputs, reference),
            "psnr_db": psnr_db(outputs, reference),
        }
    return formats


def fidelity_warnings(formats: dict, floor: float) -> list[str]:
    """One line per quantized TFLite format of a report whose PSNR against Keras is under `floor` dB, naming fp16."""
    fp16 = formats.get("tflite_fp16", {})
    if "psnr_db" in fp16:
        measured = f"{fp16['psnr_db']:.1f} dB here" if fp16["psnr_db"] else "identical here"
        instead = f"generator_fp16.tflite ({measured})"
    else:
        instead = "fp16 (add fp16 to --formats)"
    psnr = {name: formats[name].get("psnr_db") for name in QUANTIZED if name in formats}
    return [
        f"{name} reads {db:.1f} dB PSNR against the Keras generator, under the {floor:g} dB floor (--psnr-floor); "
        f"where fidelity matters ship {instead}, half the fp32 size"
        for name, db in psnr.items()
        if db is not None and db < floor  # None: identical
    ]


def resize_mode_for(given: str, held_out: tuple[int, int], size: tuple[int, int]) -> str:
    """The SavedModel's --resize-mode: `given`, or when it is "", squash for held-out inputs 1.5x the training size
    or more, else own. Logs the choice, and warns when `given` is own on such inputs.

    A model trained on downscaled data (the 128x128 CPU recipe on 256 px Cityscapes) repeats texture tiles at the
    data's own size (inference.scale_mismatch); its signatures should translate at the training size instead.

    Args:
        given: --resize-mode as passed ("" = not given).
        held_out: (height, width) of a held-out input as stored.
        size: the training size (height, width).
    """
    mismatch = scale_mismatch(*held_out, size, "a held-out input")
    if given:
        if given == "own" and mismatch:
            logger.warning("%s", mismatch)
        return given
    mode = "squash" if mismatch else "own"
    height, width = held_out
    reason = mismatch or (f"a held-out input is {width}x{height} px, within 1.5x the {size[1]}x{size[0]} the model "
                          "was trained at, so the signatures translate each image at its own size")  # fmt: skip
    logger.info("--resize-mode %s, chosen from the run's data (pass --resize-mode to choose): %s", mode, reason)
    return mode


def environment() -> dict:
    """Where the figures were measured: they only compare within one report."""
    return {
        "date": datetime.date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _default_split_dir(run: Restored, task: Task, split: str) -> str:
    """The run's own data split: the synthetic set train.py drew into the run folder, a fetched
    public dataset under --data-root, or --data-dir; "" when unknown (a .keras file, a TFDS source)."""
    if run.config is None or run.config.data_source == "tfds":
        return ""
    return task.split_folder(run_data_dir(run.config, task, run.run_dir), split)


def run_export(config: ExportConfig) -> dict:
    """Loads the generator, writes every requested format under `config.export_dir`, measures them.

    Returns:
        The report, also written to EXPORT_DIR/MODEL_NAME/export_report.json.

    Raises:
        UsageError: a missing model / data folder, outputs that exist without --overwrite, or TFLite formats
            asked for without ai-edge-litert installed.
    """
    if set(config.format_list) & set(TFLITE_MODES):
        # Each .tflite file is measured on LiteRT: say it is missing before minutes of conversion, not after.
        import_extra("ai_edge_litert.interpreter", "measuring the TFLite formats", "pass --formats savedmodel")
    from ..pretrained import example_files, example_inputs, load_any

    run = load_any(config.pretrained, config.checkpoint_dir, config.keras_file)
    generator, size = run.generator, model_size(run.generator)
    task = task_for(generator, run.config)
    direction = config.direction or (run.config.direction if run.config else "BtoA")
    if config.pretrained and not config.eval_dir:
        # No data on a fresh install: the label maps shipped with the model stand in for the val split.
        inputs = example_inputs(config.pretrained, size, config.eval_count)  # raises when the model ships none
        first = example_files(config.pretrained)[0]
        eval_dir = os.path.dirname(first)
        held_out_size = tuple(tf.io.decode_png(tf.io.read_file(first)).shape[:2])  # as stored, not as resized
    else:
        eval_dir = config.eval_dir or _default_split_dir(run, task, "val")
        if not eval_dir:
            raise UsageError("no held-out images for the fidelity figures: pass --eval-dir (a folder of pair images)")
        inputs = task.read_inputs(eval_dir, direction, size, config.eval_count)
        held_out_size = task.input_size(eval_dir, direction)
    resize_mode = resize_mode_for(config.resize_mode, held_out_size, size)
    model_dir = os.path.join(config.export_dir, config.model_name)
    formats = config.format_list
    tflite_modes = [mode for mode in TFLITE_MODES if mode in formats]
    paths = {mode: os.path.join(model_dir, tflite_name(mode)) for mode in tflite_modes}
    if "onnx" in formats:
        paths["onnx"] = os.path.join(model_dir, ONNX_FILE)
    existing = [path for path in paths.values() if os.path.exists(path)]
    if existing and not config.overwrite:
        raise UsageError(f"{existing[0]} already exists: pass --overwrite to replace it")
    calibration = None
    if "int8_full" in tflite_modes and config.pretrained and not config.calibration_dir:
        calibration = example_inputs(config.pretrained, size, config.calibration_count)
    elif "int8_full" in tflite_modes:
        calibration_dir = config.calibration_dir or _default_split_dir(run, task, "train")
        if not calibration_dir:
            raise UsageError("int8_full needs calibration images: pass --calibration-dir (a folder of pair images)")
        calibration = task.read_inputs(calibration_dir, direction, size, config.calibration_count)
    runners, failed = {}, {}
    # Paper mode: the SavedModel and the reference twin share one dropout seed, so their masks agree.
    seed = random.SystemRandom().randrange(2**31) if config.test_mode == "paper" else None
    if "savedmodel" in formats:
        path = export_saved_model(
            generator, config.export_dir, config.model_name, config.version or None, config.overwrite,
            test_mode=config.test_mode, resize_mode=resize_mode, max_pixels=config.max_pixels, seed=seed,
        )  # fmt: skip
        logger.info("SavedModel (--test-mode %s, --resize-mode %s, --max-pixels %d) in %s", config.test_mode,
                    resize_mode, config.max_pixels, path)  # fmt: skip
        translate = tf.saved_model.load(path).signatures["translate_float"]
        runners["savedmodel"] = (path, lambda x: translate(images=tf.constant(x))["images"].numpy())
    try:
        flatbuffers = convert_tflite_modes(generator, tflite_modes, calibration, config.test_mode)
    except TFLiteUnsupportedError as err:
        if not runners:
            raise UsageError(f"{err}; or add savedmodel to --formats") from err
        logger.warning("%s: %s not written", err, ", ".join(tflite_name(mode) for mode in tflite_modes))
        flatbuffers, failed = {}, {f"tflite_{mode}": {"error": str(err)} for mode in tflite_modes}
    for mode, flatbuffer in flatbuffers.items():
        path = paths[mode]
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(flatbuffer)
        logger.info("TFLite %s written to %s (%d bytes)", mode, path, len(flatbuffer))
        runners[f"tflite_{mode}"] = (path, LiteRTGenerator(path))
    if "onnx" in formats:
        model = convert_onnx(generator)
        with atomic_path(paths["onnx"]) as tmp, open(tmp, "wb") as f:
            f.write(model)
        logger.info("ONNX written to %s (%d bytes)", paths["onnx"], len(model))
        runners["onnx"] = (paths["onnx"], OnnxGenerator(paths["onnx"]))
    reference = inference_generator(generator, config.test_mode, any_size=False, seed=seed)
    metadata = export_metadata(generator, config.test_mode, resize_mode, config.max_pixels)
    measured = measure(runners, reference, inputs, config.latency_runs)
    warnings = fidelity_warnings(measured, config.psnr_floor)
    for warning in warnings:
        logger.warning("%s", warning)
    report = {
        "model": {**metadata, "source": run.checkpoint},
        "eval": {"dir": eval_dir, "images": len(inputs), "calibration_images": 0 if calibration is None else len(calibration)},
        "formats": {**measured, **failed},
        "fidelity": {"psnr_floor_db": config.psnr_floor, "warnings": warnings},
        "environment": environment(),
    }
    write_json(os.path.join(model_dir, "export_report.json"), report)
    return report


def is_safe_model_name(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_.-]+", name)) and name not in (".", "..")


CLI_DESCRIPTION = """Export a trained pix2pix generator: SavedModel (TF Serving layout), TFLite fp32/fp16/int8, export_report.json.

    python export.py                                            # latest checkpoint of outputs/, into exports/pix2pix/
    python export.py --checkpoint-dir runs/city/checkpoints --export-dir exports --model-name city
    python export.py --keras-file generator.keras --eval-dir DATA/val --calibration-dir DATA/train
    python export.py --formats savedmodel,fp32 --version 3 --overwrite
    python export.py --formats savedmodel,onnx                  # ONNX needs: pip install 'pix2pix_tf[onnx]'
    python export.py --test-mode paper --model-name pix2pix-paper --formats savedmodel   # dropout on, per-image BN
    python export.py --resize-mode squash                       # signatures translate at the training size
    python export.py --max-pixels 16777216                      # accept images up to 4096x4096 (memory grows with it)

`pix2pix-export` (installed with the package) and `python -m pix2pix_tf.export` take the same flags.
Writes EXPORT_DIR/MODEL_NAME/VERSION/ (SavedModel: serving_default, translate_encoded, translate_float),
EXPORT_DIR/MODEL_NAME/generator_{fp32,fp16,int8,int8_full}.tflite, EXPORT_DIR/MODEL_NAME/generator.onnx (when asked)
and EXPORT_DIR/MODEL_NAME/export_report.json.
"""


def main(argv: list[str] | None = None) -> int:
    """The export command: `pix2pix-export`, `python -m pix2pix_tf.export` or `python export.py`."""
    parser = argparse.ArgumentParser(
        prog=prog_name("pix2pix_tf.export"), description=CLI_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_flags(parser, ExportConfig)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args, ExportConfig)
        setup_logging("")
        report = run_export(config)
    except UsageError as err:
        parser.error(str(err))  # one line, exit code 2
    print(json.dumps(report["formats"], indent=2))
    for warning in report["fidelity"]["warnings"]:  # again after the figures, where the eye lands
        print(f"WARNING: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
